-- Store/item pairs that ever had stock or sales (the panel demand and drivers are built for).
select store_id, item_id, min(d) as first_seen_date, max(d) as last_seen_date
from (
    select store_id, item_id, stock_date as d from {{ ref('stg_pos__stock_levels') }}
    union all
    select store_id, item_id, sales_date as d from {{ ref('stg_pos__sales_lines') }}
) as seen
group by store_id, item_id

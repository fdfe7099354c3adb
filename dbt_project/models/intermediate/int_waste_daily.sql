-- Write-off quantity per store, item and waste date.
select
    store_id,
    item_id,
    waste_date,
    sum(quantity) as waste_qty
from {{ ref('stg_pos__waste_lines') }}
group by store_id, item_id, waste_date

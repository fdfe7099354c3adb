-- Units sold and realised price per store, item and sales (business) date.
select
    store_id,
    item_id,
    sales_date,
    sum(quantity)                                        as units_sold,
    sum(amount)                                          as sales_amount,
    count(*)                                             as receipt_line_count,
    case when sum(quantity) > 0 then sum(amount) / sum(quantity) end as avg_unit_price
from {{ ref('stg_pos__sales_lines') }}
group by store_id, item_id, sales_date

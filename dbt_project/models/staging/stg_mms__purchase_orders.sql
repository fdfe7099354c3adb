-- Latest known state per purchase-order line (files carry changed lines plus all still open).
with latest as (
    {{ latest_per_key(source('mms', 'purchase_orders'), ['po_id', 'line_no']) }}
)
select
    cast(po_id as text)               as po_id,
    cast(line_no as integer)          as line_no,
    cast(store_id as integer)         as store_id,
    cast(supplier_id as integer)      as supplier_id,
    cast(item_id as integer)          as item_id,
    cast(order_date as date)          as order_date,
    cast(due_date as date)            as due_date,
    cast(quantity as numeric)         as quantity,
    cast(status as text)              as status,
    _business_date                    as last_seen_date,
    _loaded_at                        as loaded_at
from latest

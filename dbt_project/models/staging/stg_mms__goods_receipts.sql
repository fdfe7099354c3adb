-- One row per goods receipt (receipt_no); reloads deduplicated.
with deduped as (
    {{ latest_per_key(source('mms', 'goods_receipts'), ['receipt_no']) }}
)
select
    cast(receipt_no as text)          as receipt_no,
    cast(po_id as text)               as po_id,
    cast(line_no as integer)          as line_no,
    cast(store_id as integer)         as store_id,
    cast(item_id as integer)          as item_id,
    cast(received_date as date)       as received_date,
    cast(quantity as numeric)         as quantity,
    _business_date                    as business_date,
    _loaded_at                        as loaded_at
from deduped

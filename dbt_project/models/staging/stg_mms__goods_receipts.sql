{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ stage_changed_keys('mms_goods_receipts', {'receipt_no': 'receipt_no'}, 'business_date') }}",
    post_hook=["{{ ensure_indexes([['receipt_no'], ['po_id', 'line_no'], ['business_date'], ['received_date'], ['loaded_at']]) }}", "{{ analyze_if_rebuilt() }}"]
  )
}}
-- One row per goods receipt (receipt_no); reloads deduplicated.
-- Incremental: only the keys of business days loaded since the last build (see macros/incremental_staging.sql).
with deduped as (
    {{ staged_raw(source('mms', 'goods_receipts'), {'receipt_no': 'receipt_no'}) }}
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

{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ stage_changed_keys('mms_purchase_orders', {'po_id': 'po_id', 'line_no': 'line_no'}, 'last_seen_date') }}",
    post_hook=["{{ ensure_indexes([['po_id', 'line_no'], ['last_seen_date'], ['status'], ['store_id', 'item_id', 'due_date'], ['store_id', 'item_id', 'due_weekday', 'due_date'], ['loaded_at']]) }}", "{{ analyze_if_rebuilt() }}"]
  )
}}
-- Latest known state per purchase-order line (files carry changed lines plus all still open).
-- Incremental: only the keys of business days loaded since the last build (see macros/incremental_staging.sql).
with latest as (
    {{ staged_raw(source('mms', 'purchase_orders'), {'po_id': 'po_id', 'line_no': 'line_no'}) }}
)
select
    cast(po_id as text)               as po_id,
    cast(line_no as integer)          as line_no,
    cast(store_id as integer)         as store_id,
    cast(supplier_id as integer)      as supplier_id,
    cast(item_id as integer)          as item_id,
    cast(order_date as date)          as order_date,
    cast(due_date as date)            as due_date,
    cast(extract(isodow from cast(due_date as date)) as integer) as due_weekday,
    cast(quantity as numeric)         as quantity,
    cast(status as text)              as status,
    _business_date                    as last_seen_date,
    _loaded_at                        as loaded_at
from latest

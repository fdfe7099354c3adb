{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ stage_changed_keys('pos_stock_levels', {'store_id': 'store_id', 'item_id': 'item_id', 'stock_date': '_business_date'}, 'stock_date') }}",
    post_hook=["{{ ensure_indexes([['stock_date'], ['store_id', 'item_id', 'stock_date'], ['loaded_at']]) }}", "{{ analyze_if_rebuilt() }}"]
  )
}}
-- Closing stock per store, item and business date (snapshot at store close, before write-off).
-- Incremental: only the keys of business days loaded since the last build (see macros/incremental_staging.sql).
with deduped as (
    {{ staged_raw(source('pos', 'stock_levels'), {'store_id': 'store_id', 'item_id': 'item_id', 'stock_date': '_business_date'}, '_loaded_at desc, _source_line desc') }}
)
select
    cast(store_id as integer)         as store_id,
    cast(item_id as integer)          as item_id,
    cast(_business_date as date)      as stock_date,
    cast(snapshot_at as timestamptz)  as snapshot_at,
    cast(on_hand_qty as numeric)      as on_hand_qty,
    _batch_id                         as batch_id,
    _loaded_at                        as loaded_at
from deduped

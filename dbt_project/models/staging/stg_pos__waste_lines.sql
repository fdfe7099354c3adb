{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ stage_changed_keys('pos_waste_lines', {'store_id': 'store_id', 'item_id': 'item_id', 'waste_date': 'waste_date'}, 'business_date') }}",
    post_hook=["{{ ensure_indexes([['waste_date', 'store_id', 'item_id'], ['business_date'], ['loaded_at']]) }}", "{{ analyze_if_rebuilt() }}"]
  )
}}
-- Write-offs per store, item and waste date; reloads deduplicated (latest load wins).
-- Incremental: only the keys of business days loaded since the last build (see macros/incremental_staging.sql).
with deduped as (
    {{ staged_raw(source('pos', 'waste_lines'), {'store_id': 'store_id', 'item_id': 'item_id', 'waste_date': 'waste_date'}) }}
)
select
    cast(store_id as integer)         as store_id,
    cast(item_id as integer)          as item_id,
    cast(waste_date as date)          as waste_date,
    cast(quantity as numeric)         as quantity,
    cast(reason as text)              as reason,
    _business_date                    as business_date,
    _loaded_at                        as loaded_at
from deduped

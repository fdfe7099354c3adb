{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ stage_changed_keys('pos_sales_lines', {'receipt_id': 'receipt_id'}, 'sales_date') }}",
    post_hook=["{{ ensure_indexes([['receipt_id'], ['sales_date'], ['store_id', 'item_id', 'sales_date'], ['loaded_at']]) }}", "{{ analyze_if_rebuilt() }}"]
  )
}}
-- One row per receipt line (receipt_id); reloads of the same file are deduplicated (latest load wins).
-- Incremental: only the keys of business days loaded since the last build (see macros/incremental_staging.sql).
with deduped as (
    {{ staged_raw(source('pos', 'sales_lines'), {'receipt_id': 'receipt_id'}) }}
)
select
    cast(receipt_id as text)          as receipt_id,
    cast(store_id as integer)         as store_id,
    cast(item_id as integer)          as item_id,
    cast(sold_at as timestamptz)      as sold_at,
    cast(_business_date as date)      as sales_date,
    cast(quantity as numeric)         as quantity,
    cast(unit_price as numeric)       as unit_price,
    cast(amount as numeric)           as amount,
    cast(weekday as text)             as weekday_label_source,
    _business_date                    as business_date,
    _batch_id                         as batch_id,
    _loaded_at                        as loaded_at
from deduped

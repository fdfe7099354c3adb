{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ stage_changed_keys('mms_weather', {'store_id': 'store_id', 'weather_date': 'weather_date', 'delivered_date': '_business_date'}, 'delivered_date') }}",
    post_hook=["{{ ensure_indexes([['weather_date'], ['delivered_date'], ['loaded_at']]) }}", "{{ analyze_if_rebuilt() }}"]
  )
}}
-- Every delivered weather value per store, date and delivery day (actuals and forecasts; reloads deduplicated).
-- Incremental: only the keys of business days loaded since the last build (see macros/incremental_staging.sql).
with deduped as (
    {{ staged_raw(source('mms', 'weather'), {'store_id': 'store_id', 'weather_date': 'weather_date', 'delivered_date': '_business_date'}, '_loaded_at desc, _source_line desc') }}
)
select
    cast(store_id as integer)         as store_id,
    cast(weather_date as date)        as weather_date,
    cast(rain_mm as numeric)          as rain_mm,
    cast(temperature_c as numeric)    as temperature_c,
    cast(is_forecast as boolean)      as is_forecast,
    cast(_business_date as date)      as delivered_date,
    _loaded_at                        as loaded_at
from deduped

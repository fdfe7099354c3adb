-- Every delivered weather value per store, date and delivery day (actuals and forecasts; reloads deduplicated).
with deduped as (
    {{ latest_per_key(source('mms', 'weather'), ['store_id', 'weather_date', '_business_date'], '_loaded_at desc, _source_line desc') }}
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

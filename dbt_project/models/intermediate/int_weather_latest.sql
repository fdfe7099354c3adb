-- One weather value per store and date: the actual when delivered, else the most recent forecast.
select distinct on (store_id, weather_date)
    store_id,
    weather_date,
    rain_mm,
    temperature_c,
    is_forecast,
    delivered_date
from {{ ref('stg_mms__weathers') }}
order by store_id, weather_date, is_forecast asc, delivered_date desc, loaded_at desc

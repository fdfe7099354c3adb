{{ config(materialized='view') }}
-- Every weather forecast as delivered: the forecast issued on issue_date (the business day of its delivery) for
-- weather_date. The forecaster reads weather for (origin o, target o + h) from here, the forecast issued at o:
-- never the observed weather of o + h, which fct_daily_demand carries once it is delivered (int_weather_latest).
-- A view: one indexed range read of staging (delivered_date) per training or nightly run.
select distinct on (store_id, delivered_date, weather_date)
    store_id,
    delivered_date                                 as issue_date,
    weather_date,
    (weather_date - delivered_date)                as lead_days,
    rain_mm,
    temperature_c
from {{ ref('stg_mms__weathers') }}
where is_forecast and weather_date > delivered_date
order by store_id, delivered_date, weather_date, loaded_at desc

{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='driver_date',
    on_schema_change='fail',
    post_hook=["{{ ensure_indexes([['driver_date']]) }}", "{{ analyze_if_rebuilt() }}"]
  )
}}
-- Demand drivers per store, item and day for history and the future up to D + horizon, as known at the
-- latest load. Incremental: recomputes D - lookback .. D + horizon (delete+insert on driver_date).
-- The fact tables are filtered with literal bounds, so the filters reach the staging tables' date indexes.
{%- set window_start = incremental_window_start() %}
{%- set window_end = business_date() ~ ' + ' ~ (var('driver_horizon_days', 14) | int) %}
with bounds as (
    select
        {% if is_incremental() -%}
        {{ incremental_window_start() }}
        {%- else -%}
        (select coalesce(min(first_seen_date), {{ business_date() }}) from {{ ref('int_store_item_assortment') }})
        {%- endif %} as start_date,
        {{ business_date() }} + {{ var('driver_horizon_days', 14) | int }} as end_date
),
dates as (
    select cast(d as date) as driver_date
    from bounds as b, generate_series(b.start_date, b.end_date, interval '1 day') as d
),
sales as (
    {{ rows_between(ref('int_sales_daily'), 'sales_date', window_start, window_end) }}
),
promotions as (
    {{ rows_between(ref('int_promotion_days'), 'promotion_date', window_start, window_end) }}
),
weather as (
    {{ rows_between(ref('int_weather_latest'), 'weather_date', window_start, window_end) }}
),
spine as (
    select a.store_id, a.item_id, d.driver_date
    from {{ ref('int_store_item_assortment') }} as a
    cross join dates as d
    where d.driver_date >= a.first_seen_date
)
select
    sp.store_id,
    sp.item_id,
    sp.driver_date,
    (p.store_id is not null)                                     as is_promotion,
    coalesce(c.is_public_holiday, false)                         as is_public_holiday,
    coalesce(c.is_school_holiday, false)                         as is_school_holiday,
    wx.rain_mm,
    wx.temperature_c,
    wx.is_forecast                                               as is_weather_forecast,
    coalesce(sa.avg_unit_price, i.unit_price)                    as unit_price,
    cast(extract(isodow from sp.driver_date) as integer)         as iso_weekday,
    (sp.driver_date > {{ business_date() }})                     as is_future
from spine as sp
left join sales as sa
  on sa.store_id = sp.store_id and sa.item_id = sp.item_id and sa.sales_date = sp.driver_date
left join {{ ref('stg_mms__items') }} as i
  on i.item_id = sp.item_id
left join {{ ref('stg_mms__stores') }} as so
  on so.store_id = sp.store_id
left join {{ ref('dim_calendar') }} as c
  on c.calendar_date = sp.driver_date and c.region = so.region
left join promotions as p
  on p.store_id = sp.store_id and p.item_id = sp.item_id and p.promotion_date = sp.driver_date
left join weather as wx
  on wx.store_id = sp.store_id and wx.weather_date = sp.driver_date

{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='demand_date',
    on_schema_change='fail',
    post_hook=["{{ ensure_indexes([['demand_date']]) }}", "{{ analyze_if_rebuilt() }}"]
  )
}}
-- Observed demand per store, item and day up to D. Incremental: recomputes D - lookback .. D
-- (delete+insert on demand_date); full refresh rebuilds all history up to D.
-- The window bounds are literals (not a join with a bounds row), so the filters reach the staging tables' date
-- indexes through the intermediate views.
{%- set window_start = incremental_window_start() %}
{%- set window_end = business_date() %}
with sales as (
    {{ rows_between(ref('int_sales_daily'), 'sales_date', window_start, window_end) }}
),
stock as (
    {{ rows_between(ref('int_stock_daily'), 'stock_date', window_start, window_end) }}
),
waste as (
    {{ rows_between(ref('int_waste_daily'), 'waste_date', window_start, window_end) }}
),
promotions as (
    {{ rows_between(ref('int_promotion_days'), 'promotion_date', window_start, window_end) }}
),
weather as (
    {{ rows_between(ref('int_weather_latest'), 'weather_date', window_start, window_end) }}
),
spine as (
    select store_id, item_id, sales_date as demand_date from sales
    union
    select store_id, item_id, stock_date from stock
    union
    select store_id, item_id, waste_date from waste
)
select
    sp.store_id,
    sp.item_id,
    sp.demand_date,
    coalesce(sa.units_sold, 0)                                   as units_sold,
    st.on_hand_qty                                               as closing_stock,
    coalesce(st.is_stockout, false)                              as is_stockout,
    coalesce(w.waste_qty, 0)                                     as waste_qty,
    coalesce(sa.avg_unit_price, i.unit_price)                    as unit_price,
    (p.store_id is not null)                                     as is_promotion,
    coalesce(c.is_public_holiday, false)                         as is_public_holiday,
    coalesce(c.is_school_holiday, false)                         as is_school_holiday,
    wx.rain_mm,
    wx.temperature_c,
    cast(extract(isodow from sp.demand_date) as integer)         as iso_weekday
from spine as sp
left join sales as sa
  on sa.store_id = sp.store_id and sa.item_id = sp.item_id and sa.sales_date = sp.demand_date
left join stock as st
  on st.store_id = sp.store_id and st.item_id = sp.item_id and st.stock_date = sp.demand_date
left join waste as w
  on w.store_id = sp.store_id and w.item_id = sp.item_id and w.waste_date = sp.demand_date
left join {{ ref('stg_mms__items') }} as i
  on i.item_id = sp.item_id
left join {{ ref('stg_mms__stores') }} as so
  on so.store_id = sp.store_id
left join {{ ref('dim_calendar') }} as c
  on c.calendar_date = sp.demand_date and c.region = so.region
left join promotions as p
  on p.store_id = sp.store_id and p.item_id = sp.item_id and p.promotion_date = sp.demand_date
left join weather as wx
  on wx.store_id = sp.store_id and wx.weather_date = sp.demand_date

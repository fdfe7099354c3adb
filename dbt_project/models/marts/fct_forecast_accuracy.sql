{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='target_date',
    on_schema_change='fail',
    post_hook=["{{ ensure_indexes([['target_date']]) }}",
               "delete from {{ this }} where target_date < {{ business_date() }} - {{ var('forecast_retention_days', 400) | int }}",
               "{{ analyze_if_rebuilt() }}"]
  )
}}
-- Every stored forecast beside what sold on its target date, once that date is past (target_date <= D): the
-- model's accuracy as the orders met it, night after night. Incremental: recomputes the target dates
-- D - accuracy_lookback_days .. D, so late sales corrections reach it; not the marts' 35 days: every target date
-- holds 14 forecasts per series (one per origin), ~420,000 rows at chain size, and 35 of them rewritten each night
-- would be ~15 M rows. A full refresh (`replenish build --full-refresh`) scores every stored forecast again.
-- Kept as long as the forecasts (var forecast_retention_days, the setting; the nightly run prunes both).
-- A forecast whose store x item has no demand row that day (nothing reported) is not scored: its outcome is unknown.
{%- if is_incremental() %}
{%- set window_start = '(' ~ business_date() ~ ' - ' ~ (var('accuracy_lookback_days', 7) | int) ~ ')' %}
{%- else %}
{%- set window_start = incremental_window_start() %}
{%- endif %}
{%- set window_end = business_date() %}
with forecasts as (
    {{ rows_between(ref('stg_forecast__forecasts'), 'target_date', window_start, window_end) }}
),
demand as (
    {{ rows_between(ref('fct_daily_demand'), 'demand_date', window_start, window_end) }}
),
scored as (
    select
        f.store_id,
        f.item_id,
        f.origin_date,
        f.target_date,
        f.horizon,
        f.model_version,
        f.is_flagged,
        f.p10,
        f.p50,
        f.p90,
        d.units_sold,
        d.is_stockout,
        -- the store's forecast series of that origin: together they expected this much and sold this much
        sum(d.units_sold) over store_day                         as store_units_sold,
        sum(f.p50) over store_day                                as store_p50
    from forecasts as f
    join demand as d
      on d.store_id = f.store_id and d.item_id = f.item_id and d.demand_date = f.target_date
    window store_day as (partition by f.store_id, f.origin_date, f.target_date)
)
select
    store_id,
    item_id,
    origin_date,
    target_date,
    horizon,
    model_version,
    is_flagged,
    p10,
    p50,
    p90,
    units_sold,
    -- sold out: demand was at least the sales, how much more is unknown
    is_stockout                                                  as is_censored,
    -- nothing of any item sold where the forecasts expected at least 10 units: the store was shut (a holiday it
    -- keeps, a refit) or its till did not report; not a forecast error (ml.calibration leaves such days out too)
    (store_units_sold = 0 and store_p50 >= 10)                   as is_store_closed,
    cast(abs(units_sold - p50) as double precision)              as abs_error,
    (units_sold < p10)                                           as is_below_p10,
    (units_sold > p90)                                           as is_above_p90
from scored

-- The stored forecasts, one row per origin, store, item and target date (P10 / P50 / P90 in units).
select
    cast(store_id as integer)         as store_id,
    cast(item_id as integer)          as item_id,
    origin_date,
    target_date,
    cast(horizon as integer)          as horizon,
    p10,
    p50,
    p90,
    model_version,
    is_flagged,
    run_id
from {{ source('forecast', 'forecasts') }}

-- Promotions expanded to one row per store, item and promotion day.
select distinct
    store_id,
    item_id,
    cast(d as date) as promotion_date
from {{ ref('stg_mms__promotions') }},
     generate_series(start_date, end_date, interval '1 day') as d
where end_date >= start_date

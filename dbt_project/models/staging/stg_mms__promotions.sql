-- Latest planned version of each promotion.
with latest as (
    {{ latest_per_key(source('mms', 'promotions'), ['promotion_id']) }}
)
select
    cast(promotion_id as text)        as promotion_id,
    cast(store_id as integer)         as store_id,
    cast(item_id as integer)          as item_id,
    cast(start_date as date)          as start_date,
    cast(end_date as date)            as end_date,
    cast(promo_type as text)          as promo_type,
    _business_date                    as last_seen_date,
    _loaded_at                        as loaded_at
from latest

{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ stage_changed_keys('mms_promotions', {'promotion_id': 'promotion_id'}, 'last_seen_date') }}",
    post_hook=["{{ ensure_indexes([['promotion_id'], ['last_seen_date'], ['loaded_at']]) }}", "{{ analyze_if_rebuilt() }}"]
  )
}}
-- Latest planned version of each promotion.
-- Incremental: only the keys of business days loaded since the last build (see macros/incremental_staging.sql).
with latest as (
    {{ staged_raw(source('mms', 'promotions'), {'promotion_id': 'promotion_id'}) }}
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

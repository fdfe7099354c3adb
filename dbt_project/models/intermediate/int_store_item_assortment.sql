{{ config(materialized='table', post_hook=["{{ ensure_indexes([['store_id', 'item_id']]) }}", "analyze {{ this }}"]) }}
-- Store/item pairs that ever had stock or sales (the panel demand and drivers are built for).
-- Read through the staging tables' (store_id, item_id, date) indexes: a loose index scan finds the pairs and
-- index probes their first and last dates, so a nightly build does not read the whole history.
with pairs as (
    {{ distinct_store_item_pairs(ref('stg_pos__stock_levels')) }}
    union
    {{ distinct_store_item_pairs(ref('stg_pos__sales_lines')) }}
)
select
    p.store_id,
    p.item_id,
    least(st.first_date, sa.first_date)    as first_seen_date,
    greatest(st.last_date, sa.last_date)   as last_seen_date
from pairs as p
cross join lateral (
    select min(s.stock_date) as first_date, max(s.stock_date) as last_date
    from {{ ref('stg_pos__stock_levels') }} as s
    where s.store_id = p.store_id and s.item_id = p.item_id
) as st
cross join lateral (
    select min(s.sales_date) as first_date, max(s.sales_date) as last_date
    from {{ ref('stg_pos__sales_lines') }} as s
    where s.store_id = p.store_id and s.item_id = p.item_id
) as sa

-- Latest master snapshot per item.
with latest as (
    {{ latest_per_key(source('mms', 'items'), ['item_id']) }}
)
select
    cast(item_id as integer)          as item_id,
    cast(item_name as text)           as item_name,
    cast(category as text)            as category,
    cast(shelf_life_days as integer)  as shelf_life_days,
    cast(unit_price as numeric)       as unit_price,
    cast(unit_cost as numeric)        as unit_cost,
    cast(is_active as boolean)        as is_active,
    _business_date                    as snapshot_date,
    _loaded_at                        as loaded_at
from latest

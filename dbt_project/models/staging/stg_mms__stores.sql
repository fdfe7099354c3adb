-- Latest master snapshot per store.
with latest as (
    {{ latest_per_key(source('mms', 'stores'), ['store_id']) }}
)
select
    cast(store_id as integer)         as store_id,
    cast(store_name as text)          as store_name,
    cast(city as text)                as city,
    cast(region as text)              as region,
    cast(opened_date as date)         as opened_date,
    cast(is_active as boolean)        as is_active,
    _business_date                    as snapshot_date,
    _loaded_at                        as loaded_at
from latest

-- Write-offs per store, item and waste date; reloads deduplicated (latest load wins).
with deduped as (
    {{ latest_per_key(source('pos', 'waste_lines'), ['store_id', 'item_id', 'waste_date']) }}
)
select
    cast(store_id as integer)         as store_id,
    cast(item_id as integer)          as item_id,
    cast(waste_date as date)          as waste_date,
    cast(quantity as numeric)         as quantity,
    cast(reason as text)              as reason,
    _business_date                    as business_date,
    _loaded_at                        as loaded_at
from deduped

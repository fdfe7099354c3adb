-- Closing stock per store, item and business date (snapshot at store close, before write-off).
with deduped as (
    {{ latest_per_key(source('pos', 'stock_levels'), ['store_id', 'item_id', '_business_date'], '_loaded_at desc, _source_line desc') }}
)
select
    cast(store_id as integer)         as store_id,
    cast(item_id as integer)          as item_id,
    cast(_business_date as date)      as stock_date,
    cast(snapshot_at as timestamptz)  as snapshot_at,
    cast(on_hand_qty as numeric)      as on_hand_qty,
    _batch_id                         as batch_id,
    _loaded_at                        as loaded_at
from deduped

-- Latest master snapshot per item and supplier (only pairs in the latest snapshot of that pair).
with latest as (
    {{ latest_per_key(source('mms', 'item_suppliers'), ['item_id', 'supplier_id']) }}
)
select
    cast(item_id as integer)          as item_id,
    cast(supplier_id as integer)      as supplier_id,
    cast(pack_size as integer)        as pack_size,
    cast(moq as integer)              as moq,
    cast(min_order_value as numeric)  as min_order_value,
    cast(lead_time_days as integer)   as lead_time_days,
    cast(order_weekdays as text)      as order_weekdays,
    cast(cutoff_time as text)         as cutoff_time,
    cast(max_order_qty as integer)    as max_order_qty,
    cast(service_level as numeric)    as service_level,
    _business_date                    as snapshot_date,
    _loaded_at                        as loaded_at
from latest

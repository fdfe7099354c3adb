-- Latest master snapshot per supplier.
with latest as (
    {{ latest_per_key(source('mms', 'suppliers'), ['supplier_id']) }}
)
select
    cast(supplier_id as integer)      as supplier_id,
    cast(supplier_name as text)       as supplier_name,
    cast(channel as text)             as channel,
    cast(email as text)               as email,
    cast(api_url as text)             as api_url,
    cast(allows_auto_order as boolean) as allows_auto_order,
    _business_date                    as snapshot_date,
    _loaded_at                        as loaded_at
from latest

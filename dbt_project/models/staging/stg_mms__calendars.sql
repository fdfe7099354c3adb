-- Latest known calendar row per date and holiday region. The weekday label is kept as delivered (untrusted).
with latest as (
    {{ latest_per_key(source('mms', 'calendar'), ['calendar_date', 'region']) }}
)
select
    cast(calendar_date as date)       as calendar_date,
    cast(region as text)              as region,
    cast(weekday as text)             as weekday_label_source,
    cast(is_public_holiday as boolean) as is_public_holiday,
    cast(is_school_holiday as boolean) as is_school_holiday,
    _business_date                    as last_seen_date,
    _loaded_at                        as loaded_at
from latest

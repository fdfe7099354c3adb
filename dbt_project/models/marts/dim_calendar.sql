-- Calendar per date and holiday region. The weekday is derived from the date (ISO, 1 = Monday);
-- the source label is kept only for auditing: it is known to be off by one day and is never used.
select
    calendar_date,
    region,
    cast(extract(isodow from calendar_date) as integer)       as iso_weekday,
    trim(to_char(calendar_date, 'Day'))                        as weekday_name,
    coalesce(is_public_holiday, false)                         as is_public_holiday,
    coalesce(is_school_holiday, false)                         as is_school_holiday,
    weekday_label_source,
    coalesce(
        lower(trim(weekday_label_source)) in (
            lower(trim(to_char(calendar_date, 'Day'))),
            lower(to_char(calendar_date, 'Dy')),
            cast(extract(isodow from calendar_date) as integer)::text
        ),
        false
    )                                                          as is_weekday_label_consistent
from {{ ref('stg_mms__calendars') }}

select store_id, store_name, city, region, opened_date, is_active, snapshot_date
from {{ ref('stg_mms__stores') }}

select supplier_id, supplier_name, channel, email, api_url, allows_auto_order, snapshot_date
from {{ ref('stg_mms__suppliers') }}

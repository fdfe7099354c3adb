select item_id, item_name, category, shelf_life_days, unit_price, unit_cost, is_active, snapshot_date
from {{ ref('stg_mms__items') }}

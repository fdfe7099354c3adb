-- Closing stock per store, item and date, with the stock-out flag (closing stock hit 0 or below).
select
    store_id,
    item_id,
    stock_date,
    snapshot_at,
    on_hand_qty,
    on_hand_qty <= 0                 as is_stockout,
    on_hand_qty < 0                  as has_negative_stock
from {{ ref('stg_pos__stock_levels') }}

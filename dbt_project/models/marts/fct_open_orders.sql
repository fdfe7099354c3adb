-- Open purchase-order lines (latest load) with the quantity still to arrive.
select
    po_id,
    line_no,
    store_id,
    supplier_id,
    item_id,
    order_date,
    due_date,
    ordered_qty,
    received_qty,
    open_qty,
    due_date <= {{ business_date() }} as is_overdue
from {{ ref('int_open_order_lines') }}

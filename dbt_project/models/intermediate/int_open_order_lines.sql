-- Purchase-order lines still open at the latest load, net of goods already received.
-- Receipts are summed for the open lines only (index lookups), not for the whole receipt history.
with open_lines as (
    select * from {{ ref('stg_mms__purchase_orders') }} where status = 'open'
),
receipts as (
    select g.po_id, g.line_no, sum(g.quantity) as received_qty, max(g.received_date) as last_received_date
    from {{ ref('stg_mms__goods_receipts') }} as g
    join open_lines as o
      on o.po_id = g.po_id
     and o.line_no = g.line_no
    group by g.po_id, g.line_no
)
select
    po.po_id,
    po.line_no,
    po.store_id,
    po.supplier_id,
    po.item_id,
    po.order_date,
    po.due_date,
    po.quantity                                           as ordered_qty,
    coalesce(r.received_qty, 0)                           as received_qty,
    greatest(po.quantity - coalesce(r.received_qty, 0), 0) as open_qty,
    po.last_seen_date
from open_lines as po
left join receipts as r
    on r.po_id = po.po_id
   and r.line_no = po.line_no
where po.quantity - coalesce(r.received_qty, 0) > 0

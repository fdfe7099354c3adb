-- Purchase-order lines still open at the latest load, net of goods already received.
with receipts as (
    select po_id, line_no, sum(quantity) as received_qty, max(received_date) as last_received_date
    from {{ ref('stg_mms__goods_receipts') }}
    group by po_id, line_no
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
from {{ ref('stg_mms__purchase_orders') }} as po
left join receipts as r
    on r.po_id = po.po_id
   and r.line_no = po.line_no
where po.status = 'open'
  and po.quantity - coalesce(r.received_qty, 0) > 0

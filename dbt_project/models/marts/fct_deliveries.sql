{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='received_date',
    on_schema_change='fail',
    post_hook=["{{ ensure_indexes([['received_date'], ['store_id', 'item_id', 'received_date']]) }}", "{{ analyze_if_rebuilt() }}"]
  )
}}
-- What arrived per store, item and day up to D, beside what its purchase-order lines asked for: the deliveries
-- behind each day's stock. `replenish accuracy` reads which delivery served a sold-out day and whether it came
-- short or was ordered outside Replenish. Incremental: recomputes the received dates D - lookback .. D.
{%- set window_start = incremental_window_start() %}
{%- set window_end = business_date() %}
with receipts as (
    {{ rows_between(ref('stg_mms__goods_receipts'), 'received_date', window_start, window_end) }}
),
line_totals as (
    -- all each of the window's purchase-order lines received up to D (a line may come in more than one receipt,
    -- some before the window): one aggregate, not a lookup per receipt
    select g.po_id, g.line_no, sum(g.quantity) as line_received_qty
    from {{ ref('stg_mms__goods_receipts') }} as g
    join (select distinct po_id, line_no from receipts) as w
      on w.po_id = g.po_id and w.line_no = g.line_no
    where g.received_date <= {{ window_end }}
    group by g.po_id, g.line_no
),
receipt_lines as (
    -- per purchase-order line and day: what came in, what the line asked for and all it received up to D;
    -- po_id null where the receipt's line is not in the purchase orders
    select
        r.store_id,
        r.item_id,
        r.received_date,
        sum(r.quantity)                      as received_qty,
        max(po.po_id)                        as po_id,
        max(po.quantity)                     as ordered_qty,
        max(po.due_date)                     as due_date,
        max(t.line_received_qty)             as line_received_qty
    from receipts as r
    left join {{ ref('stg_mms__purchase_orders') }} as po
      on po.po_id = r.po_id and po.line_no = r.line_no
    left join line_totals as t
      on t.po_id = r.po_id and t.line_no = r.line_no
    group by r.store_id, r.item_id, r.received_date, r.po_id, r.line_no
)
select
    store_id,
    item_id,
    received_date,
    sum(received_qty)                                             as received_qty,
    -- null where a receipt's purchase order is unknown (nobody's order explains that delivery)
    case when bool_and(po_id is not null) then sum(ordered_qty) end as ordered_qty,
    coalesce(min(due_date), received_date)                        as due_date,
    coalesce(bool_or(line_received_qty < ordered_qty), false)     as is_short_delivery,
    bool_and(po_id is not null)                                   as has_known_order
from receipt_lines
group by store_id, item_id, received_date

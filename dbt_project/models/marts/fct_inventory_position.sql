-- Latest closing stock per store and item as of D, plus open orders due in (as_of_date, as_of_date + window].
-- Overdue open lines (due on or before as_of_date) are reported separately, not counted as pipeline stock.
-- The latest snapshot is one index probe per store/item pair, not a sort of the whole stock history.
with latest_stock as (
    select p.store_id, p.item_id, s.stock_date as as_of_date, s.snapshot_at, s.on_hand_qty
    from {{ ref('int_store_item_assortment') }} as p
    cross join lateral (
        select d.stock_date, d.snapshot_at, d.on_hand_qty
        from {{ ref('int_stock_daily') }} as d
        where d.store_id = p.store_id and d.item_id = p.item_id and d.stock_date <= {{ business_date() }}
        order by d.stock_date desc
        limit 1
    ) as s
),
orders as (
    select
        s.store_id,
        s.item_id,
        sum(o.open_qty) filter (
            where o.due_date > s.as_of_date
              and o.due_date <= s.as_of_date + {{ var('open_order_window_days', 28) | int }}
        ) as open_order_qty,
        sum(o.open_qty) filter (where o.due_date <= s.as_of_date) as overdue_order_qty
    from latest_stock as s
    join {{ ref('int_open_order_lines') }} as o
      on o.store_id = s.store_id and o.item_id = s.item_id
    group by s.store_id, s.item_id
)
select
    s.store_id,
    s.item_id,
    s.as_of_date,
    s.snapshot_at,
    s.on_hand_qty,
    coalesce(o.open_order_qty, 0)    as open_order_qty,
    coalesce(o.overdue_order_qty, 0) as overdue_order_qty
from latest_stock as s
left join orders as o
  on o.store_id = s.store_id and o.item_id = s.item_id

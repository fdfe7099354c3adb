"""What happens to an order nobody reviewed when its supplier's cutoff passes (rule ``on_cutoff``).

- ``send``: approved as proposed (through the outbox, like a person's approval; not counted as touchless);
- ``skip``: cancelled with reason ``cutoff_skipped`` (the store gets no delivery from this opportunity);
- ``escalate``: stays in review with reason ``cutoff_escalated`` and one alert, so someone can still act
  (a late order the supplier may or may not accept).

Each order is handled once: the action is recorded in ``cutoff_action`` in the same transaction (one event,
one alert), so the frequent dispatch DAG can call this every few minutes without repeating anything. Reasons
accumulate: an escalated order keeps the review reasons it had.

An order still open when its delivery date is over (escalated and never acted on, or left by nights the dispatch
did not run) can no longer bring anything: it is cancelled with reason ``delivery_date_passed``, so the review
queue holds only what a person can still act on. One alert names it unless its cutoff already raised one.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

from replenish import migrations
from replenish.orders.order_tables import add_event, set_status
from replenish.orders.outbox import DELIVERY_PASSED, approve, cancel
from replenish.orders.release import cutoff_action, load_rules

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

ESCALATED = "cutoff_escalated"
SKIPPED = "cutoff_skipped"
ACTOR = "cutoff"  # a system actor; release never re-decides an order whose cutoff was handled


def enforce_cutoffs(
    engine: Engine, now: dt.datetime, *, rules_path: str | Path | None = None, business_today: dt.date | None = None
) -> dict[str, int]:
    """Apply each open order's cutoff action once its cutoff is at or before ``now``.

    Orders whose delivery date is before ``business_today`` get no cutoff action (sending them is pointless and
    dispatch would refuse anyway): they are cancelled, reason ``delivery_date_passed``. Counts per action, and
    ``delivery_passed`` for those cancellations (the dispatcher's ``expired`` counts outbox messages instead)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rules = load_rules(rules_path)
    counts = {"send": 0, "skip": 0, "escalate": 0, "delivery_passed": 0}
    with engine.begin() as conn:
        migrations.ensure_current(conn)
        due = (
            conn.execute(
                text(
                    """SELECT order_id, store_id, supplier_id, status, reasons FROM orders.purchase_orders
                    WHERE status IN ('proposed', 'in_review') AND cutoff_at <= :now AND cutoff_action IS NULL
                      AND (CAST(:today AS date) IS NULL OR delivery_date >= CAST(:today AS date))
                    ORDER BY cutoff_at, order_id FOR UPDATE SKIP LOCKED"""
                ),
                {"now": now, "today": business_today},
            )
            .mappings()
            .all()
        )
        for o in due:
            action = cutoff_action(rules, o["supplier_id"], o["store_id"])
            actor = f"{ACTOR}:{action}:rules-v{rules.version}"
            conn.execute(
                text("UPDATE orders.purchase_orders SET cutoff_action = :a, cutoff_handled_at = :now "
                     "WHERE order_id = :o"),
                {"a": action, "now": now, "o": o["order_id"]},
            )
            if action == "send":
                approve(conn, o["order_id"], actor=actor)
            elif action == "skip":
                _cancel_for(conn, o["order_id"], actor, SKIPPED)
            else:
                reasons = [*(o["reasons"] or ()), ESCALATED]
                if o["status"] != "in_review":
                    set_status(conn, o["order_id"], "in_review", actor, reasons=reasons)
                else:
                    conn.execute(text("UPDATE orders.purchase_orders SET reasons = :r WHERE order_id = :o"),
                                 {"r": reasons, "o": o["order_id"]})
                add_event(conn, o["order_id"], actor, "escalated", None, now.isoformat())
                conn.execute(
                    text("INSERT INTO orders.alerts (order_id, kind, message) VALUES (:o, 'cutoff_escalation', :m)"),
                    {
                        "o": o["order_id"],
                        "m": f"order {o['order_id']} (store {o['store_id']}, supplier {o['supplier_id']}) "
                        "was not reviewed before the supplier's cutoff",
                    },
                )
            counts[action] += 1
        if business_today is not None:
            counts["delivery_passed"] = _cancel_past_deliveries(conn, business_today)
    return counts


def _cancel_for(conn: Connection, order_id: str, actor: str, reason: str) -> None:
    """Cancelled by the system: the reason joins the order's reasons (the queue's filter) and its history."""
    conn.execute(text("UPDATE orders.purchase_orders SET reasons = array_append(reasons, :r) WHERE order_id = :o"),
                 {"r": reason, "o": order_id})
    cancel(conn, order_id, actor=actor, reason=reason)


def _cancel_past_deliveries(conn: Connection, business_today: dt.date) -> int:
    over = conn.execute(
        text("""SELECT order_id, store_id, supplier_id, delivery_date, cutoff_action FROM orders.purchase_orders
                WHERE status IN ('proposed', 'in_review') AND delivery_date < :today
                ORDER BY delivery_date, order_id FOR UPDATE SKIP LOCKED"""),
        {"today": business_today},
    ).mappings().all()
    for o in over:
        _cancel_for(conn, o["order_id"], f"{ACTOR}:expired", DELIVERY_PASSED)
        if o["cutoff_action"] is None:      # an escalated order was told at its cutoff
            conn.execute(
                text("INSERT INTO orders.alerts (order_id, kind, message) VALUES (:o, :k, :m)"),
                {"o": o["order_id"], "k": DELIVERY_PASSED,
                 "m": f"order {o['order_id']} (store {o['store_id']}, supplier {o['supplier_id']}) was still open "
                      f"when its delivery date {o['delivery_date']} passed (business day {business_today}): "
                      "cancelled, nothing was sent"},
            )
    return len(over)

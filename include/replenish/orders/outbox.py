"""Transactional outbox: approving an order and enqueueing its message commit in ONE transaction.

State machine (orders.purchase_orders.status):
proposed -> in_review -> approved | auto_approved -> queued -> sent -> acknowledged | rejected;
queued/retry -> failed -> retry -> ... -> dead_letter (the channel failed: a person may retry);
proposed/in_review -> cancelled; queued/retry -> cancelled when the delivery date passed before it could be
sent (``expire``: outbox status 'expired', reason ``delivery_date_passed``; nothing to retry).
The outbox idempotency key is the order id; every transmission attempt is in orders.send_attempts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from replenish.display_names import names
from replenish.orders.order_tables import OPEN_STATUSES, add_event, set_status


def build_payload(conn: Connection, order_id: str) -> dict:
    head = (
        conn.execute(text("SELECT * FROM orders.purchase_orders WHERE order_id = :o"), {"o": order_id}).mappings().one()
    )
    lines: Sequence[Any] = conn.execute(
        text(
            "SELECT item_id, final_qty FROM orders.order_lines WHERE order_id = :o AND final_qty > 0 ORDER BY item_id"
        ),
        {"o": order_id},
    ).fetchall()
    supplier = supplier_contact(conn, head["supplier_id"])
    nm = names(conn)   # for the people reading the order: the supplier's clerk, the store
    return {
        "order_id": order_id,
        "store_id": head["store_id"],
        "store_name": nm["store"].get(int(head["store_id"])),
        "supplier_id": head["supplier_id"],
        "order_date": head["order_date"].isoformat(),
        "delivery_date": head["delivery_date"].isoformat(),
        "version": head["version"],
        "supplier": supplier,
        "lines": [{"item_id": i, "qty": int(q), "item_name": nm["item"].get(int(i))} for i, q in lines],
    }


def supplier_contact(conn: Connection, supplier_id: int) -> dict:
    """email / api_url from marts.dim_suppliers when those columns exist (tolerant: table built elsewhere)."""
    cols = {
        r[0]
        for r in conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema='marts' AND table_name='dim_suppliers'"
            )
        )
    }
    want = [c for c in ("email", "api_url", "edi_id") if c in cols]
    if not want or "supplier_id" not in cols:
        return {}
    row = (
        conn.execute(
            text(f"SELECT {', '.join(want)} FROM marts.dim_suppliers WHERE supplier_id = :s LIMIT 1"),
            {"s": int(supplier_id)},
        )
        .mappings()
        .first()
    )
    return dict(row) if row else {}


def approve(conn: Connection, order_id: str, *, actor: str, auto: bool = False, channel: str | None = None) -> int:
    """Approve + enqueue atomically (the caller's transaction). Returns the outbox message id."""
    set_status(conn, order_id, "auto_approved" if auto else "approved", actor, expect=OPEN_STATUSES)
    conn.execute(
        text("UPDATE orders.purchase_orders SET released_by = :a WHERE order_id = :o"), {"a": actor, "o": order_id}
    )
    ch = (
        channel
        or conn.execute(
            text("SELECT COALESCE(channel, 'email') FROM orders.purchase_orders WHERE order_id = :o"), {"o": order_id}
        ).scalar()
    )
    payload = build_payload(conn, order_id)
    mid = conn.execute(
        text("""INSERT INTO orders.outbox (order_id, idempotency_key, channel, payload)
        VALUES (:o, :o, :c, CAST(:p AS jsonb)) RETURNING message_id"""),
        {"o": order_id, "c": ch, "p": json.dumps(payload)},
    ).scalar()
    set_status(conn, order_id, "queued", actor)
    assert mid is not None  # INSERT ... RETURNING always returns the new row
    return int(mid)


def requeue(conn: Connection, order_id: str, *, actor: str) -> None:
    """A person retries a dead-lettered order (after fixing the channel): its message is due again, attempts reset.
    The idempotency key stays the order id, so a supplier that did receive an earlier attempt sees a repeat."""
    set_status(conn, order_id, "queued", actor, expect=("dead_letter",))
    conn.execute(
        text("""UPDATE orders.outbox SET status = 'pending', attempts = 0, next_attempt_at = now()
                WHERE order_id = :o AND status = 'dead_letter'"""),
        {"o": order_id},
    )


# An order whose delivery date is over before it was sent: cancelled, by the dispatcher (approved, not yet sent)
# or at the cutoff's housekeeping (still open in review): no action on it can bring that delivery any more.
DELIVERY_PASSED = "delivery_date_passed"


def cancel(conn: Connection, order_id: str, *, actor: str, reason: str) -> None:
    set_status(conn, order_id, "cancelled", actor, expect=OPEN_STATUSES)
    add_event(conn, order_id, actor, "cancel_reason", None, reason)


def expire(conn: Connection, order_id: str, *, actor: str, reason: str, message_id: int, detail: str) -> None:
    """The dispatcher found the order's delivery date passed before it could be sent: cancelled with
    ``reason`` (a dead letter would offer a Retry that can only send a delivery for a day that is over)."""
    set_status(conn, order_id, "cancelled", actor,
               expect=("approved", "auto_approved", "queued", "sending", "retry", "failed"))
    add_event(conn, order_id, actor, "cancel_reason", None, reason)
    conn.execute(
        text("UPDATE orders.outbox SET status = 'expired', last_error = :d WHERE message_id = :m"),
        {"d": detail, "m": message_id},
    )

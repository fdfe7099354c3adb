"""Persistence of orders: orders.purchase_orders / order_lines / order_events (tables: replenish.migrations).

Idempotent per (store, supplier, delivery date): the order id is deterministic and the table has a
unique key on the triple, so a re-run never creates a second order. A re-run only touches orders still
open (``proposed`` / ``in_review``); lines edited by a user keep their final_qty (the new proposal is
still recorded in proposed_qty/explanation). Anything past review is locked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, cast

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

from replenish import clock

OPEN_STATUSES = ("proposed", "in_review")
# Actors that are the system, not a person: their events never stop release from re-deciding an order.
SYSTEM_ACTOR_PREFIXES = ("system:", "release:", "cutoff:", "dispatcher:")
SYSTEM_ACTOR_RE = "^(system|release|cutoff|dispatcher):"  # the same, for SQL (~)
STATUSES = (
    "proposed",
    "in_review",
    "approved",
    "auto_approved",
    "queued",
    "sending",
    "sent",
    "acknowledged",
    "rejected",
    "failed",
    "retry",
    "dead_letter",
    "cancelled",
)

def add_event(conn: Connection, order_id: str, actor: str, event: str, from_value=None, to_value=None) -> None:
    # stamped with the platform's "now" (replenish.clock), as the cutoffs and countdowns beside it: on a pinned
    # clock (the demo) the history then reads "proposed 22:06, approved 07:40" before a cutoff at 08:00, not the
    # wall-clock date of the machine
    conn.execute(
        text(
            "INSERT INTO orders.order_events (order_id, at, actor, event, from_value, to_value) "
            "VALUES (:o, :at, :a, :e, :f, :t)"
        ),
        {
            "o": order_id,
            "at": clock.now(conn),
            "a": actor,
            "e": event,
            "f": None if from_value is None else str(from_value),
            "t": None if to_value is None else str(to_value),
        },
    )


def set_status(conn: Connection, order_id: str, new: str, actor: str, *, expect=None, reasons=None) -> str:
    """Move an order to ``new`` (optionally only from ``expect`` statuses); records an event."""
    row = conn.execute(
        text("SELECT status FROM orders.purchase_orders WHERE order_id = :o FOR UPDATE"), {"o": order_id}
    ).first()
    if row is None:
        raise KeyError(order_id)
    old = row[0]
    if expect is not None and old not in expect:
        raise ValueError(f"order {order_id} is {old!r}, expected one of {tuple(expect)}")
    conn.execute(
        text(
            "UPDATE orders.purchase_orders SET status = :s, updated_at = :now, "
            "reasons = COALESCE(:r, reasons) WHERE order_id = :o"
        ),
        {"s": new, "o": order_id, "r": reasons, "now": clock.now(conn)},
    )
    add_event(conn, order_id, actor, "status", old, new)
    return old


def _insert_values(conn: Connection, sql: str, rows: list[tuple], template: str) -> None:
    """Multi-row INSERT (psycopg2 ``execute_values``, 1,000 rows a statement) in the connection's transaction: a
    chain's 30,000 proposal lines are 30 statements, not 30,000 round trips."""
    from psycopg2.extras import execute_values

    dbapi_conn = conn.connection.driver_connection
    assert dbapi_conn is not None  # a checked-out, open connection always has its DBAPI connection
    with dbapi_conn.cursor() as cur:
        execute_values(cur, sql, rows, template=template, page_size=1000)


def upsert_proposals(
    conn: Connection, orders: pd.DataFrame, lines: pd.DataFrame, *, run_id: str, actor: str = "system:propose"
) -> dict:
    """Write a proposal result. Returns counts: orders_created, orders_updated, lines_written, locked.

    In four steps, set-based through two temporary tables (``_po_in``, ``_ol_in``; dropped at commit):
    the new orders are inserted (an existing order of the same store, supplier and delivery date keeps its id),
    the lines are merged into the open orders, and every created or changed order gets its event."""
    if orders.empty:
        return {"orders_created": 0, "orders_updated": 0, "lines_written": 0, "locked": 0}
    _stage_orders(conn, _order_rows(orders, run_id))
    created, idmap, locked = _insert_new_orders(conn)
    _stage_lines(conn, lines, idmap)
    changed, vanished = _merge_lines(conn)
    updated = _record_changes(conn, created, {*changed, *vanished}, run_id=run_id, actor=actor)
    return {
        "orders_created": len(created),
        "orders_updated": len(updated),
        "lines_written": len(changed),
        "locked": locked,
    }


def _order_rows(orders: pd.DataFrame, run_id: str) -> list[tuple]:
    """The proposal's orders as rows of ``_po_in`` (missing optional columns as NULL, no reasons as [])."""
    o = orders.copy()
    for c in ("cutoff_at", "channel", "next_delivery_date"):
        if c not in o:
            o[c] = None
    o["reasons"] = o["reasons"] if "reasons" in o else [[] for _ in range(len(o))]
    has_value = "order_value_cents" in o
    return [
        (
            r.order_id,
            int(r.store_id),
            int(r.supplier_id),
            pd.Timestamp(r.delivery_date).date(),
            None if pd.isna(r.next_delivery_date) else pd.Timestamp(r.next_delivery_date).date(),
            pd.Timestamp(r.order_date).date(),
            None if r.cutoff_at is None or pd.isna(r.cutoff_at) else pd.Timestamp(r.cutoff_at).to_pydatetime(),
            run_id,
            list(r.reasons),
            r.channel,
            int(r.order_value_cents) / 100 if has_value else None,
        )
        for r in cast(Iterable[Any], o.itertuples(index=False))
    ]


def _stage_orders(conn: Connection, rows: list[tuple]) -> None:
    """The orders into the temporary table ``_po_in`` (executemany cannot RETURNING portably, and one insert per
    order would be slow)."""
    conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS _po_in (LIKE orders.purchase_orders INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    conn.exec_driver_sql("TRUNCATE _po_in")
    _insert_values(
        conn,
        """INSERT INTO _po_in (order_id, store_id, supplier_id, delivery_date, next_delivery_date,
            order_date, cutoff_at, run_id, reasons, channel, order_value) VALUES %s""",
        rows,
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s::text[], %s, %s)",
    )


def _insert_new_orders(conn: Connection) -> tuple[list[str], dict[str, str], int]:
    """Insert the staged orders not stored yet. Returns (ids created, staged id -> stored id, orders locked: past
    review, so a re-proposal does not touch them)."""
    created = [
        r[0]
        for r in conn.exec_driver_sql("""
        INSERT INTO orders.purchase_orders (order_id, store_id, supplier_id, delivery_date, next_delivery_date,
            order_date, cutoff_at, run_id, reasons, channel, order_value)
        SELECT order_id, store_id, supplier_id, delivery_date, next_delivery_date, order_date, cutoff_at, run_id,
               reasons, channel, order_value FROM _po_in
        ON CONFLICT (store_id, supplier_id, delivery_date) DO NOTHING RETURNING order_id""").fetchall()
    ]
    # map to the stored order id (in case an order was created under another id for the same triple)
    idmap: dict[str, str] = dict(
        conn.exec_driver_sql("""SELECT i.order_id, p.order_id FROM _po_in i JOIN orders.purchase_orders p
        USING (store_id, supplier_id, delivery_date)""").fetchall()
    )
    locked = conn.exec_driver_sql("""SELECT count(*) FROM _po_in i JOIN orders.purchase_orders p
        USING (store_id, supplier_id, delivery_date) WHERE p.status NOT IN ('proposed', 'in_review')""").scalar()
    return created, idmap, int(locked or 0)


def _stage_lines(conn: Connection, lines: pd.DataFrame, idmap: dict[str, str]) -> None:
    """The proposal's lines (under their stored order ids, with their explanations) into ``_ol_in``."""
    if "explanation" not in lines:
        from replenish.orders.proposals import render_explanations

        lines = lines.assign(explanation=render_explanations(lines))
    ln = lines[["order_id", "item_id", "proposed_qty", "explanation"]]
    lrec = [
        (idmap.get(a, a), int(b), int(c), e)
        for a, b, c, e in zip(ln["order_id"], ln["item_id"], ln["proposed_qty"], ln["explanation"], strict=True)
    ]
    conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS _ol_in (order_id text, item_id int, proposed_qty int, "
        "explanation jsonb) ON COMMIT DROP"
    )
    conn.exec_driver_sql("TRUNCATE _ol_in")
    if lrec:
        _insert_values(conn, "INSERT INTO _ol_in VALUES %s", lrec, "(%s, %s, %s, %s::jsonb)")


def _merge_lines(conn: Connection) -> tuple[list[str], list[str]]:
    """Merge the staged lines into the open orders; lines no longer proposed go to 0. Returns the order ids of
    the lines written (new or changed) and of the lines zeroed, one id per line."""
    changed = conn.exec_driver_sql("""
        INSERT INTO orders.order_lines AS l (order_id, item_id, proposed_qty, final_qty, explanation)
        SELECT t.order_id, t.item_id, t.proposed_qty, t.proposed_qty, t.explanation
        FROM _ol_in t JOIN orders.purchase_orders p ON p.order_id = t.order_id
        WHERE p.status IN ('proposed', 'in_review')
        ON CONFLICT (order_id, item_id) DO UPDATE SET
            proposed_qty = excluded.proposed_qty,
            explanation = excluded.explanation,
            -- a person's edit survives; a release cap (a system edit) is reset and decided again
            final_qty = CASE WHEN l.edited_by IS NULL OR l.edited_by ~ '^release:' THEN excluded.proposed_qty
                             ELSE l.final_qty END,
            edit_reason = CASE WHEN l.edited_by ~ '^release:' THEN NULL ELSE l.edit_reason END,
            edited_at = CASE WHEN l.edited_by ~ '^release:' THEN NULL ELSE l.edited_at END,
            edited_by = CASE WHEN l.edited_by ~ '^release:' THEN NULL ELSE l.edited_by END
        WHERE l.proposed_qty IS DISTINCT FROM excluded.proposed_qty
           OR l.explanation IS DISTINCT FROM excluded.explanation
        RETURNING l.order_id""").fetchall()
    vanished = conn.exec_driver_sql("""
        UPDATE orders.order_lines l SET proposed_qty = 0,
            final_qty = CASE WHEN l.edited_by IS NULL OR l.edited_by ~ '^release:' THEN 0 ELSE l.final_qty END
        FROM orders.purchase_orders p
        WHERE p.order_id = l.order_id AND p.status IN ('proposed', 'in_review') AND l.proposed_qty <> 0
          AND l.order_id IN (SELECT order_id FROM _ol_in)
          AND NOT EXISTS (SELECT 1 FROM _ol_in t WHERE t.order_id = l.order_id AND t.item_id = l.item_id)
        RETURNING l.order_id""").fetchall()
    return [r[0] for r in changed], [r[0] for r in vanished]


def _record_changes(conn: Connection, created: list[str], touched: set[str], *, run_id: str, actor: str) -> list[str]:
    """A ``created`` event per new order; a new version, the staged reasons and value and a ``reproposed`` event
    per existing order whose lines changed. Returns those updated orders' ids."""
    updated = sorted(touched - set(created))
    for oid in created:
        add_event(conn, oid, actor, "created", None, run_id)
    for oid in updated:
        v = conn.execute(
            text("""UPDATE orders.purchase_orders p SET version = p.version + 1, updated_at = :now,
            run_id = :r, reasons = i.reasons, order_value = i.order_value FROM _po_in i
            WHERE p.order_id = :o AND i.store_id = p.store_id AND i.supplier_id = p.supplier_id
              AND i.delivery_date = p.delivery_date RETURNING p.version"""),
            {"o": oid, "r": run_id, "now": clock.now(conn)},
        ).scalar()
        add_event(conn, oid, actor, "reproposed", None if v is None else v - 1, v)
    return updated


def edit_line(
    conn: Connection, order_id: str, item_id: int, qty: int, *, actor: str, reason: str | None = None
) -> None:
    """A user edit: only while the order is open; the edit survives later re-runs."""
    if int(qty) != qty or qty < 0:
        raise ValueError("final quantity must be a non-negative integer")
    st = conn.execute(
        text("SELECT status FROM orders.purchase_orders WHERE order_id = :o FOR UPDATE"), {"o": order_id}
    ).scalar()
    if st not in OPEN_STATUSES:
        raise PermissionError(f"order {order_id} is {st!r}: locked")
    old = conn.execute(
        text("""UPDATE orders.order_lines l SET final_qty = :q, edited_by = :a, edited_at = :now,
        edit_reason = :r FROM orders.order_lines o WHERE l.order_id = o.order_id AND l.item_id = o.item_id
        AND l.order_id = :o AND l.item_id = :i RETURNING o.final_qty"""),
        {"q": int(qty), "a": actor, "r": reason, "o": order_id, "i": int(item_id), "now": clock.now(conn)},
    ).scalar()
    if old is None:
        raise KeyError((order_id, item_id))
    conn.execute(
        text("UPDATE orders.purchase_orders SET version = version + 1, updated_at = :now WHERE order_id = :o"),
        {"o": order_id, "now": clock.now(conn)},
    )
    add_event(conn, order_id, actor, f"line_edited:{item_id}", old, qty)


def load_order(conn: Connection, order_id: str) -> tuple[dict, list[dict]]:
    head = (
        conn.execute(text("SELECT * FROM orders.purchase_orders WHERE order_id = :o"), {"o": order_id})
        .mappings()
        .first()
    )
    lines = (
        conn.execute(text("SELECT * FROM orders.order_lines WHERE order_id = :o ORDER BY item_id"), {"o": order_id})
        .mappings()
        .all()
    )
    return dict(head) if head else {}, [dict(r) for r in lines]


def explanation_of(line: dict) -> dict:
    e = line.get("explanation")
    return e if isinstance(e, dict) else json.loads(e or "{}")

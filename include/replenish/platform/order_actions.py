"""Write side: quantity edits, added/removed lines, approve, reject - on top of orders.order_tables / orders.outbox.

Optimistic locking: every change names the order version it was based on; the order row is locked
(FOR UPDATE) and a different current version means another device changed the order in between ->
409 ``version_conflict`` (the second device is told and reloads). Each change bumps the version.
The state machine itself stays in replenish.orders (edit_line / approve / cancel refuse closed orders).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

from replenish import clock
from replenish.orders import outbox
from replenish.orders.order_tables import OPEN_STATUSES, add_event, edit_line
from replenish.platform.access import Principal
from replenish.platform.errors import FieldError, PlatformError, conflict, invalid, not_found
from replenish.platform.labels import actor_label
from replenish.platform.order_queries import ItemRule, get_order, item_rules, order_lines, supplier_items

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# Why a person changed a quantity (required for each edit: the audit trail and the forecast team read them).

EDIT_REASONS: dict[str, str] = {
    "stock_count": "Stock on hand differs",
    "shelf_space": "Shelf space",
    "promotion": "Promotion / display",
    "local_event": "Local event",
    "weather": "Weather",
    "forecast_too_high": "Forecast too high",
    "forecast_too_low": "Forecast too low",
    "supplier_issue": "Supplier issue",
    "other": "Other",
}
REJECT_REASONS: dict[str, str] = {
    "not_needed": "Not needed",
    "store_closed": "Store closed",
    "supplier_unavailable": "Supplier unavailable",
    "duplicate": "Duplicate order",
    "other": "Other",
}
MAX_QTY = 100_000


def reason_choices(reasons: dict[str, str]) -> str:
    """'Not needed (not_needed), Store closed (store_closed), ...': the words, with the code an API client sends."""
    return ", ".join(f"{label} ({code})" for code, label in reasons.items())


@dataclass(frozen=True)
class LineChange:
    item_id: int | str  # the raw text when what was typed is not an id (reported by change_lines)
    op: str  # "set" | "add" | "remove"
    qty: int | None
    reason: str


def qty_errors(qty: object, rule: ItemRule, field: str) -> list[FieldError]:
    """Clear messages for a quantity against pack multiple, MOQ and non-negativity."""
    if isinstance(qty, bool) or not isinstance(qty, int):
        return [FieldError(field, "quantity must be a whole number")]
    if qty < 0:
        return [FieldError(field, "quantity cannot be negative (enter 0 to order none)")]
    if qty > MAX_QTY:
        return [FieldError(field, f"quantity cannot exceed {MAX_QTY}")]
    if qty == 0:
        return []
    if qty < rule.moq:
        return [FieldError(field, f"below the supplier's minimum order quantity of {rule.moq}: order 0 or at least "
                                  f"{rule.moq}")]
    if qty % rule.pack_size:
        lo = qty // rule.pack_size * rule.pack_size
        hi = lo + rule.pack_size
        near = f"{lo} or {hi}" if lo >= max(rule.moq, 1) else f"{hi}"
        return [FieldError(field, f"must be a multiple of the pack size {rule.pack_size} (e.g. {near})")]
    return []


WHOLE_NUMBER = re.compile(r"-?[0-9]{1,12}")


def parse_qty(raw: str | None) -> int | str:
    """Form input -> int, or the raw text when it is not a whole number (reported by qty_errors)."""
    s = (raw or "").strip()
    # int() would also read "1_000" and other scripts' digits: a quantity typed is ASCII digits
    return int(s) if WHOLE_NUMBER.fullmatch(s) else s


# what to do after a version conflict, by what the request was doing: a change is typed again, an approval is a
# judgement on the order as it was read, so the order must be read again before it is given
_AFTER_CONFLICT = {
    "change": "read it again and repeat your change",
    "approve": "read it again and approve it if it is still right",
    "reject": "read it again and reject it if you still want to",
    "retry": "read it again and retry it if it still failed",
}


def lock_order(conn: Connection, p: Principal, order_id: str, expected_version: int | None,
               doing: str = "change") -> dict:
    head = get_order(conn, p, order_id, for_update=True)
    if head is None:
        raise not_found()
    if expected_version is not None and int(expected_version) != int(head["version"]):
        last = conn.execute(text("SELECT actor FROM orders.order_events WHERE order_id = :o "
                                 "ORDER BY at DESC, event_id DESC LIMIT 1"), {"o": order_id}).scalar()
        by = f" by {actor_label(last)}" if last else ""
        raise PlatformError(
            409,
            "version_conflict",
            f"order {order_id} was changed{by} after you read it (now version {head['version']}, you had "
            f"{expected_version}): {_AFTER_CONFLICT[doing]}",
        )
    return head


def _require_open(head: dict) -> None:
    if head["status"] not in OPEN_STATUSES:
        raise conflict("order_locked", f"order {head['order_id']} is {head['status']}: it can no longer be changed")


def _require_future_delivery(conn: Connection, head: dict) -> None:
    if head["delivery_date"] < clock.today(conn):
        raise conflict("delivery_date_passed", f"order {head['order_id']} was for delivery on {head['delivery_date']}, "
                                               "which has passed: reject it and order for a later delivery")


def _bump(conn: Connection, order_id: str) -> None:
    conn.execute(
        text("UPDATE orders.purchase_orders SET version = version + 1, updated_at = :now WHERE order_id = :o"),
        {"o": order_id, "now": clock.now(conn)},
    )


def change_lines(
    conn: Connection, p: Principal, order_id: str, changes: list[LineChange], expected_version: int | None
) -> dict:
    """Validate all changes first (every error reported, field by field), then apply them; returns the head."""
    head = lock_order(conn, p, order_id, expected_version)
    _require_open(head)
    lines = {ln["item_id"]: ln for ln in order_lines(conn, order_id)}
    adds = [c.item_id for c in changes if c.op == "add" and isinstance(c.item_id, int)]
    rules = item_rules(conn, head, list(lines.values()), adds)
    allowed = supplier_items(conn, head) if adds else None
    errors: list[FieldError] = []
    if not changes:
        errors.append(FieldError("/lines", "no change given"))
    first_at: dict[int, int] = {}
    for i, c in enumerate(changes):
        at = f"/lines/{i}"  # JSON pointer into the request (the API's body, the web form's lines)
        if c.reason not in EDIT_REASONS:
            errors.append(FieldError(f"{at}/reason", "say why the quantity changes: " + reason_choices(EDIT_REASONS)))
        if not isinstance(c.item_id, int):
            errors.append(FieldError(f"{at}/item_id", "item id is required: the item's number"))
            continue
        # applied in turn, the last of two quantities would win unseen and each would bump the version
        if c.item_id in first_at:
            errors.append(FieldError(f"{at}/item_id", f"item {c.item_id} is already changed at "
                                                      f"/lines/{first_at[c.item_id]}: give each item once"))
        first_at.setdefault(c.item_id, i)
        if c.op == "add":
            if c.item_id in lines:
                errors.append(FieldError(f"{at}/item_id", f"item {c.item_id} is already on the order: edit its line"))
            elif allowed is not None and c.item_id not in allowed:
                errors.append(
                    FieldError(f"{at}/item_id", f"item {c.item_id} is not delivered by supplier {head['supplier_id']}")
                )
        elif c.item_id not in lines:
            errors.append(FieldError(f"{at}/item_id", f"item {c.item_id} is not on this order"))
        if c.op in ("set", "add"):
            errors += qty_errors(c.qty, rules.get(c.item_id, ItemRule()), f"{at}/qty")
            if c.op == "add" and c.qty == 0:
                errors.append(FieldError(f"{at}/qty", "an added line needs a quantity above 0"))
    if errors:
        raise invalid(errors, "the change was not saved: " + "; ".join(e.message for e in errors))
    for c in changes:
        if c.op == "add":
            conn.execute(
                text(
                    """INSERT INTO orders.order_lines (order_id, item_id, proposed_qty, final_qty, explanation,
                        edited_by, edited_at, edit_reason)
                    VALUES (:o, :i, 0, :q, CAST(:e AS jsonb), :a, :now, :r)"""
                ),
                {
                    "o": order_id,
                    "i": c.item_id,
                    "q": c.qty,
                    "e": '{"why": "added by hand (not proposed)", "added": true}',
                    "a": p.actor,
                    "r": c.reason,
                    "now": clock.now(conn),
                },
            )
            add_event(conn, order_id, p.actor, f"line_added:{c.item_id}", None, c.qty)
            add_event(conn, order_id, p.actor, f"edit_reason:{c.item_id}", None, c.reason)
            _bump(conn, order_id)
        elif c.op == "remove" and int(lines[c.item_id]["proposed_qty"]) == 0:
            # a hand-added line goes away; a proposed line is set to 0 instead (the edit then survives re-runs)
            conn.execute(
                text("DELETE FROM orders.order_lines WHERE order_id = :o AND item_id = :i"),
                {"o": order_id, "i": c.item_id},
            )
            add_event(conn, order_id, p.actor, f"line_removed:{c.item_id}", lines[c.item_id]["final_qty"], None)
            add_event(conn, order_id, p.actor, f"edit_reason:{c.item_id}", None, c.reason)
            _bump(conn, order_id)
        else:
            qty = 0 if c.op == "remove" else int(c.qty or 0)
            if qty == int(lines[c.item_id]["final_qty"]) and lines[c.item_id]["edited_by"] is not None:
                continue  # nothing changes: no event, no new version
            edit_line(conn, order_id, int(c.item_id), qty, actor=p.actor, reason=c.reason)
            add_event(conn, order_id, p.actor, f"edit_reason:{c.item_id}", None, c.reason)
    _refresh_value(conn, order_id)
    fresh = get_order(conn, p, order_id)
    assert fresh is not None
    return fresh


def _refresh_value(conn: Connection, order_id: str) -> None:
    """Keep order_value in step with edited quantities when unit costs are known (marts), else leave it."""
    has = conn.exec_driver_sql("SELECT to_regclass('marts.dim_items') IS NOT NULL").scalar()
    if not has:
        return
    conn.execute(
        text(
            """UPDATE orders.purchase_orders p SET order_value = v.value FROM (
                SELECT round(sum(l.final_qty * i.unit_cost), 2) AS value FROM orders.order_lines l
                JOIN (SELECT DISTINCT ON (item_id) item_id, unit_cost FROM marts.dim_items
                      ORDER BY item_id, snapshot_date DESC) i USING (item_id)
                WHERE l.order_id = :o) v
            WHERE p.order_id = :o AND v.value IS NOT NULL"""
        ),
        {"o": order_id},
    )


def approve(conn: Connection, p: Principal, order_id: str, expected_version: int | None) -> dict:
    """Approve and enqueue in the outbox (one transaction: the caller's)."""
    head = lock_order(conn, p, order_id, expected_version, "approve")
    _require_open(head)
    _require_future_delivery(conn, head)
    n = conn.execute(
        text("SELECT count(*) FROM orders.order_lines WHERE order_id = :o AND final_qty > 0"), {"o": order_id}
    ).scalar()
    if not n:
        raise conflict("empty_order", f"order {order_id} has no quantity above 0: reject it instead")
    outbox.approve(conn, order_id, actor=p.actor)
    _bump(conn, order_id)
    fresh = get_order(conn, p, order_id)
    assert fresh is not None
    return fresh


def retry(conn: Connection, p: Principal, order_id: str, expected_version: int | None) -> dict:
    """Send a dead-lettered order again (its channel failed for good before)."""
    head = lock_order(conn, p, order_id, expected_version, "retry")
    if head["status"] != "dead_letter":
        raise conflict("not_dead_letter", f"order {order_id} is {head['status']}: only a failed send can be retried")
    _require_future_delivery(conn, head)
    outbox.requeue(conn, order_id, actor=p.actor)
    _bump(conn, order_id)
    fresh = get_order(conn, p, order_id)
    assert fresh is not None
    return fresh


def reject(conn: Connection, p: Principal, order_id: str, expected_version: int | None, reason: str) -> dict:
    if reason not in REJECT_REASONS:
        raise invalid([FieldError("/reason", "choose why the order is rejected: " + reason_choices(REJECT_REASONS))],
                      "choose why the order is rejected: " + reason_choices(REJECT_REASONS))
    head = lock_order(conn, p, order_id, expected_version, "reject")
    _require_open(head)
    outbox.cancel(conn, order_id, actor=p.actor, reason=reason)
    _bump(conn, order_id)
    fresh = get_order(conn, p, order_id)
    assert fresh is not None
    return fresh

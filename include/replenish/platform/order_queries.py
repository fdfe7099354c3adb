"""Read side of the platform: the review queue, one order with its lines, item rules, sales and audit.

Every query joins the principal's scope predicate (access.scope_sql). Marts (names, pack sizes, sales) are
optional: without them the pages still work from the order tables alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import text

from replenish.orders.channels.base import kept_on_disk
from replenish.orders.order_tables import OPEN_STATUSES, STATUSES, explanation_of
from replenish.platform.access import Principal, scope_sql
from replenish.platform.errors import has_control_chars

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, ScalarResult

QUEUE_LIMIT = 500


@dataclass(frozen=True)
class QueueFilter:
    status: str = "open"  # "open" (proposed + in_review), "all" or one status
    delivery_date: dt.date | None = None
    store_id: int | None = None
    supplier_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ItemRule:
    pack_size: int = 1
    moq: int = 0
    source: str = "default"  # "marts" | "explanation" | "default"


def _exists(conn: Connection, relation: str) -> bool:
    return conn.exec_driver_sql(f"SELECT to_regclass('{relation}') IS NOT NULL").scalar() is True


def review_queue(conn: Connection, p: Principal, f: QueueFilter) -> list[dict]:
    scope, params = scope_sql(p, conn)
    where = [scope]
    if f.status == "open":
        where.append("p.status = ANY(:statuses)")
        params["statuses"] = list(OPEN_STATUSES)
    elif f.status != "all":
        if f.status not in STATUSES:
            raise ValueError(f"status must be open, all or one of {', '.join(STATUSES)}")
        where.append("p.status = :status")
        params["status"] = f.status
    for col in ("delivery_date", "store_id", "supplier_id"):
        v = getattr(f, col)
        if v is not None and v != "":
            where.append(f"p.{col} = :{col}")
            params[col] = v
    if f.reason:
        # reason codes may carry a detail after ':' (e.g. "max_deviation:I1"): filter on the code
        where.append("EXISTS (SELECT 1 FROM unnest(p.reasons) r WHERE split_part(r, ':', 1) = :reason)")
        params["reason"] = f.reason
    rows = conn.execute(
        text(
            f"""SELECT p.order_id, p.store_id, p.supplier_id, p.delivery_date, p.order_date, p.status, p.reasons,
                   p.cutoff_at, p.version, p.order_value, p.channel,
                   (SELECT count(*) FROM orders.order_lines l WHERE l.order_id = p.order_id AND l.final_qty > 0)
                       AS line_count
            FROM orders.purchase_orders p WHERE {" AND ".join(where)}
            ORDER BY p.delivery_date, p.store_id, p.supplier_id LIMIT {QUEUE_LIMIT}"""
        ),
        params,
    ).mappings()
    return [dict(r) for r in rows]


def queue_facets(conn: Connection, p: Principal, since: dt.date | None = None) -> dict[str, list]:
    """Values for the filter drop-downs, within the principal's scope: open orders and, with ``since``, any
    order delivered from that date on (not the whole history, which grows every night)."""
    scope, params = scope_sql(p, conn)
    if since is not None:
        scope = f"{scope} AND (p.status = ANY(:facet_open) OR p.delivery_date >= :facet_since)"
        params.update(facet_open=list(OPEN_STATUSES), facet_since=since)
    row = (
        conn.execute(
            text(
                f"""SELECT array_agg(DISTINCT p.store_id) AS stores, array_agg(DISTINCT p.supplier_id) AS suppliers,
                       array_agg(DISTINCT p.delivery_date) AS dates
                FROM orders.purchase_orders p WHERE {scope}"""
            ),
            params,
        )
        .mappings()
        .one()
    )
    reasons: ScalarResult[Any] = conn.execute(
        text(
            f"""SELECT DISTINCT split_part(r, ':', 1) FROM orders.purchase_orders p, unnest(p.reasons) r
            WHERE {scope} ORDER BY 1"""
        ),
        params,
    ).scalars()
    return {
        "stores": sorted(row["stores"] or []),
        "suppliers": sorted(row["suppliers"] or []),
        "dates": sorted(row["dates"] or []),
        "reasons": list(reasons),
    }


def get_order(conn: Connection, p: Principal, order_id: str, *, for_update: bool = False) -> dict | None:
    """The order head if ``p`` may see it (else None: the caller answers 404)."""
    if has_control_chars(order_id) or len(order_id) > 200:
        return None
    scope, params = scope_sql(p, conn)
    params["o"] = order_id
    lock = " FOR UPDATE OF p" if for_update else ""
    sql = f"SELECT p.* FROM orders.purchase_orders p WHERE p.order_id = :o AND {scope}{lock}"
    head = conn.execute(text(sql), params).mappings().first()
    return dict(head) if head else None


def order_lines(conn: Connection, order_id: str) -> list[dict]:
    return lines_by_order(conn, [order_id]).get(order_id, [])


def lines_by_order(conn: Connection, order_ids: list[str]) -> dict[str, list[dict]]:
    """The lines of several orders in one query (a list page must not cost a query per order)."""
    rows = conn.execute(
        text("SELECT * FROM orders.order_lines WHERE order_id = ANY(:o) ORDER BY order_id, item_id"),
        {"o": list(order_ids)},
    ).mappings()
    out: dict[str, list[dict]] = {}
    for r in rows:
        d = dict(r)
        d["explanation"] = explanation_of(d)
        out.setdefault(d["order_id"], []).append(d)
    return out


def item_rules(conn: Connection, head: dict, lines: list[dict], extra_items: Sequence[int] = ()) -> dict[int, ItemRule]:
    """Pack size and MOQ per item of the order: marts.dim_replenishment_parameters (store x item x supplier),
    else what the proposal recorded in its explanation (steps.pack / steps.moq), else pack 1 / MOQ 0."""
    rules: dict[int, ItemRule] = {}
    for ln in lines:
        steps = (ln.get("explanation") or {}).get("steps") or {}
        pack, moq = steps.get("pack"), steps.get("moq")
        if pack and moq:
            rules[ln["item_id"]] = ItemRule(max(int(pack[0]), 1), max(int(moq[0]), 0), "explanation")
    if _exists(conn, "marts.dim_replenishment_parameters"):
        items = sorted({ln["item_id"] for ln in lines} | set(extra_items))
        rows = conn.execute(
            text(
                """SELECT item_id, pack_size, moq FROM marts.dim_replenishment_parameters
                WHERE store_id = :s AND supplier_id = :p AND item_id = ANY(:i)"""
            ),
            {"s": head["store_id"], "p": head["supplier_id"], "i": items},
        ).mappings()
        for r in rows:
            rules[r["item_id"]] = ItemRule(max(int(r["pack_size"] or 1), 1), max(int(r["moq"] or 0), 0), "marts")
    return rules


def supplier_items(conn: Connection, head: dict) -> list[int] | None:
    """Items this supplier delivers to this store; None (no restriction) when the parameters mart is not built
    or does not know the pair yet (a store opened after the last master load must still be able to order)."""
    if not _exists(conn, "marts.dim_replenishment_parameters"):
        return None
    items: list[int] = list(
        conn.execute(
            text(
                """SELECT DISTINCT item_id FROM marts.dim_replenishment_parameters
                WHERE store_id = :s AND supplier_id = :p ORDER BY 1"""
            ),
            {"s": head["store_id"], "p": head["supplier_id"]},
        ).scalars()
    )
    return items or None


def sales_history(
    conn: Connection, store_id: int, item_ids: list[int], until: dt.date, days: int = 28
) -> dict[int, list[tuple[dt.date, float]]]:
    if not item_ids or not _exists(conn, "marts.fct_daily_demand"):
        return {}
    rows = conn.execute(
        text(
            """SELECT item_id, demand_date, units_sold FROM marts.fct_daily_demand
            WHERE store_id = :s AND item_id = ANY(:i) AND demand_date <= :u
              AND demand_date > CAST(:u AS date) - :n ORDER BY demand_date"""
        ),
        {"s": store_id, "i": item_ids, "u": until, "n": days},
    )
    out: dict[int, list[tuple[dt.date, float]]] = {}
    for item, day, units in cast("Iterable[tuple[int, dt.date, Any]]", rows):
        out.setdefault(item, []).append((day, float(units)))
    return out


def forecast_band(
    conn: Connection, store_id: int, item_ids: list[int], origin: dt.date, until: dt.date
) -> dict[int, list[tuple[dt.date, float, float, float]]]:
    """(target date, p10, p50, p90) from the latest forecast made on or before ``origin``."""
    if not item_ids:
        return {}
    rows = conn.execute(
        text(
            """SELECT DISTINCT ON (item_id, target_date) item_id, target_date, p10, p50, p90
            FROM forecast.forecasts WHERE store_id = :s AND item_id = ANY(:i) AND origin_date <= :o
              AND target_date > :o AND target_date <= :u ORDER BY item_id, target_date, origin_date DESC"""
        ),
        {"s": store_id, "i": item_ids, "o": origin, "u": until},
    )
    out: dict[int, list[tuple[dt.date, float, float, float]]] = {}
    for item, day, p10, p50, p90 in cast("Iterable[tuple[int, dt.date, Any, Any, Any]]", rows):
        out.setdefault(item, []).append((day, float(p10), float(p50), float(p90)))
    return out


def audit_trail(conn: Connection, order_id: str) -> list[dict]:
    rows = conn.execute(
        text(
            "SELECT event_id, at, actor, event, from_value, to_value FROM orders.order_events "
            "WHERE order_id = :o ORDER BY event_id"
        ),
        {"o": order_id},
    ).mappings()
    return [dict(r) for r in rows]


def outbox_state(conn: Connection, order_id: str) -> dict[str, Any] | None:
    return outbox_by_order(conn, [order_id]).get(order_id)


def outbox_by_order(conn: Connection, order_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The latest outbox message of each order that has one; ``kept_on_disk`` where it was sent as an e-mail only
    written to the outbox folder (no SendGrid key): sent as far as the outbox goes, but no supplier has it."""
    rows = conn.execute(
        text(
            """SELECT DISTINCT ON (o.order_id) o.order_id, o.message_id, o.channel, o.status, o.attempts,
                      o.last_error, o.next_attempt_at, o.sent_at,
                      (SELECT e.to_value FROM orders.order_events e WHERE e.order_id = o.order_id
                          AND e.event = 'sent_ref' ORDER BY e.at DESC, e.event_id DESC LIMIT 1) AS sent_ref
               FROM orders.outbox o WHERE o.order_id = ANY(:o) ORDER BY o.order_id, o.message_id DESC"""
        ),
        {"o": list(order_ids)},
    ).mappings()
    return {r["order_id"]: {**r, "kept_on_disk": r["status"] == "sent" and kept_on_disk(r["sent_ref"])}
            for r in rows}


DISPATCH_DAG = "order_dispatch"


def last_dispatch_at(conn: Connection) -> dt.datetime | None:
    """When the frequent dispatch (Airflow's ``order_dispatch``, every 5 minutes) last finished a run, as the
    monitoring plugin recorded it (wall clock, UTC); None where it never has (its scheduler is off)."""
    return conn.execute(text("SELECT max(finished_at) FROM ops.pipeline_runs WHERE dag_id = :d AND state = 'success'"),
                        {"d": DISPATCH_DAG}).scalar()


def natural_key(value: object) -> tuple:
    """'Store 2' before 'Store 17': digit runs compare as numbers (names and ids from the exports)."""
    import re

    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t.casefold()) for t in re.findall(r"\d+|\D+", str(value)))


def line_prices(conn: Connection, head: dict, lines: list[dict]) -> dict[int, float]:
    """Purchase price per unit of each line's item: the replenishment parameters (store x item x supplier), else
    what the proposal recorded (explanation risk.unit_cost); items without either are left out."""
    prices: dict[int, float] = {}
    for ln in lines:
        cost = ((ln.get("explanation") or {}).get("risk") or {}).get("unit_cost")
        if cost:
            prices[ln["item_id"]] = float(cost)
    if lines and _exists(conn, "marts.dim_replenishment_parameters"):
        rows = conn.execute(
            text(
                """SELECT item_id, unit_cost FROM marts.dim_replenishment_parameters
                WHERE store_id = :s AND supplier_id = :p AND item_id = ANY(:i)"""
            ),
            {"s": head["store_id"], "p": head["supplier_id"], "i": [ln["item_id"] for ln in lines]},
        )
        for item, cost in cast("Iterable[tuple[int, Any]]", rows):
            if cost is not None:
                prices[item] = float(cost)
    return prices


def past_orders(
    conn: Connection, store_id: int, item_ids: list[int], since: dt.date, until: dt.date, exclude_order: str = ""
) -> dict[int, list[tuple[dt.date, float]]]:
    """Quantities ordered per delivery day: the merchandise system's purchase orders (staging) and the orders
    this platform sent, for the chart's 'last orders'."""
    out: dict[int, dict[dt.date, float]] = {}
    if not item_ids:
        return {}
    params = {"s": store_id, "i": item_ids, "a": since, "b": until, "x": exclude_order}
    if _exists(conn, "staging.stg_mms__purchase_orders"):
        rows = conn.execute(
            text(
                """SELECT item_id, due_date, sum(quantity) FROM staging.stg_mms__purchase_orders
                WHERE store_id = :s AND item_id = ANY(:i) AND due_date BETWEEN :a AND :b
                  AND status <> 'cancelled' GROUP BY 1, 2"""
            ),
            params,
        )
        for item, day, qty in cast("Iterable[tuple[int, dt.date, Any]]", rows):
            out.setdefault(item, {})[day] = float(qty)
    rows = conn.execute(
        text(
            """SELECT l.item_id, p.delivery_date, sum(l.final_qty) FROM orders.purchase_orders p
            JOIN orders.order_lines l USING (order_id)
            WHERE p.store_id = :s AND l.item_id = ANY(:i) AND p.delivery_date BETWEEN :a AND :b
              AND p.order_id <> :x AND p.status IN ('approved', 'auto_approved', 'queued', 'sending', 'sent',
                                                    'acknowledged', 'retry')
            GROUP BY 1, 2"""
        ),
        params,
    )
    for item, day, qty in cast("Iterable[tuple[int, dt.date, Any]]", rows):
        out.setdefault(item, {})[day] = float(qty)  # ours replace the MMS copy of the same delivery
    return {k: sorted(v.items()) for k, v in out.items()}

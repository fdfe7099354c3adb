"""The facts release rules need for all lines of a run, looked up set-based (a few queries per run, not per line),
and the :class:`~replenish.orders.release.OrderFacts` of a run's orders built from them (:func:`order_facts`).

Each lookup reads only the rows it needs through an index; a relation that is not built yet (a fresh database
before its first ``dbt build``) yields no facts, which the rules treat as the cautious answer (gate missing,
snapshot stale, no automatic orders allowed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from replenish import clock
from replenish.orders.inputs import FIRST_ORIGIN_SQL
from replenish.orders.release import PROPOSAL_REASONS, Decision, LineFacts, LineRisk, OrderFacts

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

NEW_ITEM_DAYS = 28  # an item sold at a store for less than this is new there


@dataclass(frozen=True)
class LineKey:
    store_id: int
    supplier_id: int
    item_id: int
    delivery_date: dt.date
    coverage_days: int = 1


def _exists(conn: Connection, *relations: str) -> bool:
    return all(conn.execute(text("SELECT to_regclass(:r) IS NOT NULL"), {"r": r}).scalar() for r in relations)


def _rows(conn: Connection, sql: str, params: dict[str, Any], *relations: str) -> list[Any]:
    if not _exists(conn, *relations):
        return []
    return list(conn.execute(text(sql), params).all())


def _unnest(keys: list[LineKey]) -> tuple[str, dict[str, Any]]:
    """A CTE ``k`` with one row per key (n = position), for set-based lookups instead of one query per line."""
    cte = """k AS MATERIALIZED (SELECT * FROM unnest(CAST(:k_s AS int[]), CAST(:k_p AS int[]), CAST(:k_i AS int[]),
        CAST(:k_dd AS date[]), CAST(:k_c AS int[])) WITH ORDINALITY
        AS k(store_id, supplier_id, item_id, delivery_date, coverage_days, n))"""
    return cte, {
        "k_s": [k.store_id for k in keys],
        "k_p": [k.supplier_id for k in keys],
        "k_i": [k.item_id for k in keys],
        "k_dd": [k.delivery_date for k in keys],
        "k_c": [max(int(k.coverage_days or 1), 1) for k in keys],
    }


def gate_by_store(conn: Connection, business_date: dt.date) -> dict[int, bool]:
    """Per store: did the quality gate pass (no blocking failure) for the business date."""
    return dict(_rows(
        conn,
        "SELECT store_id, NOT bool_or(is_automation_blocked) FROM ops.quality_gate "
        "WHERE business_date = :d GROUP BY store_id",
        {"d": business_date}, "ops.quality_gate",
    ))


def categories(conn: Connection) -> dict[int, str]:
    return dict(_rows(
        conn,
        "SELECT DISTINCT ON (item_id) item_id, category FROM marts.dim_items "
        "ORDER BY item_id, snapshot_date DESC",
        {}, "marts.dim_items",
    ))


def snapshots(conn: Connection, business_date: dt.date) -> dict[int, dt.datetime]:
    """Latest stock snapshot time per store (as of the business date)."""
    return dict(_rows(
        conn,
        "SELECT store_id, max(snapshot_at) FROM marts.fct_inventory_position WHERE as_of_date <= :d "
        "GROUP BY store_id",
        {"d": business_date}, "marts.fct_inventory_position",
    ))


def snapshot_freshness(ts: dt.datetime | None, business_date: dt.date,
                       now: dt.datetime | None = None) -> tuple[float | None, dt.date | None]:
    """(age in hours, local date) of a stock snapshot, judged against the business date.

    The reference time is the end of the business day (the data may be historical: the wall clock says nothing
    about it), or ``now`` when that is earlier (a run during the business day)."""
    if ts is None:
        return None, None
    eod = clock.end_of_business_day(business_date)
    ref = min(now, eod) if now is not None else eod
    return max((ref - clock.local(ts)).total_seconds() / 3600, 0.0), clock.local(ts).date()


@dataclass(frozen=True)
class SupplierTerms:
    allows_auto_order: bool
    min_order_value: float


def supplier_terms(conn: Connection) -> dict[tuple[int, int], SupplierTerms]:
    """Per (store, supplier): automatic orders allowed, and the minimum order value (EUR at cost)."""
    return {
        (r[0], r[1]): SupplierTerms(bool(r[2]), float(r[3] or 0))
        for r in _rows(
            conn,
            "SELECT store_id, supplier_id, bool_and(allows_auto_order), max(min_order_value) "
            "FROM marts.dim_replenishment_parameters GROUP BY store_id, supplier_id",
            {}, "marts.dim_replenishment_parameters",
        )
    }


def promotions(conn: Connection, keys: list[LineKey]) -> list[bool]:
    """Whether each line's item is on promotion at its store on the delivery date."""
    if not keys:
        return []
    cte, params = _unnest(keys)
    found = dict(_rows(
        conn,
        f"""WITH {cte},
        d AS MATERIALIZED (SELECT store_id, item_id, driver_date, is_promotion FROM marts.fct_demand_drivers
            WHERE driver_date IN (SELECT DISTINCT delivery_date FROM k))
        SELECT k.n, bool_or(d.is_promotion) FROM k JOIN d
        ON d.store_id = k.store_id AND d.item_id = k.item_id AND d.driver_date = k.delivery_date
        GROUP BY k.n""",
        params, "marts.fct_demand_drivers",
    ))
    return [bool(found.get(n)) for n in range(1, len(keys) + 1)]


def new_items(conn: Connection, keys: list[LineKey], business_date: dt.date) -> list[bool]:
    """Whether each line's item is new at its store: no demand row in the ``NEW_ITEM_DAYS`` days before the last
    ``NEW_ITEM_DAYS`` (it was not in the store's data four weeks ago). One read of that date range through the
    mart's date index, joined to the run's pairs (a per-line lookup has no (store, item) index to use)."""
    if not keys:
        return []
    cte, params = _unnest(keys)
    params |= {"bd": business_date, "nd": NEW_ITEM_DAYS}
    known = {r[0] for r in _rows(
        conn,
        f"""WITH {cte}, pairs AS (SELECT DISTINCT store_id, item_id FROM k),
        seen AS (SELECT DISTINCT d.store_id, d.item_id FROM marts.fct_daily_demand d
                 JOIN pairs p ON d.store_id = p.store_id AND d.item_id = p.item_id
                 WHERE d.demand_date <= CAST(:bd AS date) - :nd AND d.demand_date > CAST(:bd AS date) - 2 * :nd)
        SELECT k.n FROM k JOIN seen s ON s.store_id = k.store_id AND s.item_id = k.item_id""",
        params, "marts.fct_daily_demand",
    )}
    return [n not in known for n in range(1, len(keys) + 1)]


def forecast_flags(conn: Connection, keys: list[LineKey], business_date: dt.date) -> list[tuple[bool, bool]]:
    """(flagged, fallback) per line of the forecast used for its coverage window (latest origin <= business date).
    fallback = flagged rows without a model version (item-profile fallback, no trained model)."""
    if not keys:
        return []
    cte, params = _unnest(keys)
    params["d"] = business_date
    params["t"] = min(k.delivery_date for k in keys)
    found = {
        r[0]: (bool(r[1]), bool(r[2]))
        for r in _rows(
            conn,
            f"""WITH {cte},
            fc AS MATERIALIZED (SELECT store_id, item_id, origin_date, target_date, is_flagged, model_version
                FROM forecast.forecasts WHERE origin_date <= :d AND origin_date >= {FIRST_ORIGIN_SQL}
                  AND target_date >= :t),
            f AS (
                SELECT DISTINCT ON (k.n, fc.target_date) k.n, fc.is_flagged, fc.model_version
                FROM k JOIN fc ON fc.store_id = k.store_id AND fc.item_id = k.item_id
                 AND fc.target_date >= k.delivery_date AND fc.target_date < k.delivery_date + k.coverage_days
                ORDER BY k.n, fc.target_date, fc.origin_date DESC)
            SELECT n, bool_or(is_flagged), bool_or(is_flagged AND model_version IS NULL) FROM f GROUP BY n""",
            params, "forecast.forecasts",
        )
    }
    return [found.get(n, (False, False)) for n in range(1, len(keys) + 1)]


def order_facts(conn: Connection, orders: list[Any], business_date: dt.date, now: dt.datetime) -> list[OrderFacts]:
    """OrderFacts of every order, with the line facts looked up set-based for all lines at once."""
    all_lines = conn.execute(
        text("SELECT order_id, item_id, final_qty, explanation FROM orders.order_lines "
             "WHERE order_id = ANY(:ids) ORDER BY order_id, item_id"),
        {"ids": [o["order_id"] for o in orders]},
    ).mappings().all()
    by_order = {o["order_id"]: o for o in orders}
    keys = [
        LineKey(by_order[ln["order_id"]]["store_id"], by_order[ln["order_id"]]["supplier_id"],
                ln["item_id"], by_order[ln["order_id"]]["delivery_date"],
                int((ln["explanation"] or {}).get("coverage_days") or 1))
        for ln in all_lines
    ]
    category = categories(conn)
    promo = promotions(conn, keys)
    new = new_items(conn, keys, business_date)
    flags = forecast_flags(conn, keys, business_date)
    line_facts: dict[str, list[LineFacts]] = {}
    for ln, is_promo, is_new, (flagged, fallback) in zip(all_lines, promo, new, flags, strict=True):
        line_facts.setdefault(ln["order_id"], []).append(LineFacts(
            ln["item_id"], int(ln["final_qty"]), category=category.get(ln["item_id"]),
            risk=line_risk(ln["explanation"] or {}), is_promotion=is_promo, is_new_item=is_new and ln["final_qty"] > 0,
            forecast_flagged=flagged, forecast_fallback=fallback,
        ))
    gate = gate_by_store(conn, business_date)
    snaps = snapshots(conn, business_date)
    terms = supplier_terms(conn)
    out = []
    for o in orders:
        age, snap_date = snapshot_freshness(snaps.get(o["store_id"]), business_date, now)
        t = terms.get((o["store_id"], o["supplier_id"]))
        out.append(OrderFacts(
            o["order_id"], o["store_id"], o["supplier_id"], float(o["order_value"] or 0),
            gate.get(o["store_id"]), age, bool(t and t.allows_auto_order), line_facts.get(o["order_id"], []),
            tuple(r for r in (o["reasons"] or ()) if r in PROPOSAL_REASONS),
            snapshot_date=snap_date, business_date=business_date,
        ))
    return out


def line_risk(expl: dict) -> LineRisk | None:
    """The demand distribution a proposal recorded for its line (None for lines without one: added by hand)."""
    risk, steps = expl.get("risk"), expl.get("steps") or {}
    if not risk or "position" not in expl:
        return None
    return LineRisk(
        position=float(expl["position"]), sell_p10=float(risk["sell_p10"]), sell_p50=float(risk["sell_p50"]),
        sell_p90=float(risk["sell_p90"]), shelf_p10=float(risk["shelf_p10"]),
        pack=max(int((steps.get("pack") or [1])[0]), 1), moq=max(int((steps.get("moq") or [0])[0]), 0),
        top_up_units=int(steps.get("top_up_packs") or 0) * max(int((steps.get("pack") or [1])[0]), 1),
        unit_cost=float(risk["unit_cost"]), unit_price=float(risk["unit_price"]),
    )


def value_after(of: OrderFacts, d: Decision) -> float:
    """Order value (EUR at cost) once the caps are applied."""
    caps = {c.item_id: c.to_qty for c in d.caps}
    return sum(caps.get(ln.item_id, ln.qty) * (ln.risk.unit_cost if ln.risk else 0.0) for ln in of.lines)

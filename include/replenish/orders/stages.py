"""Stage functions the DAG calls: propose -> release -> dispatch (tables in schema orders)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import text

from replenish.orders import calendar as cal
from replenish.orders.dispatcher import DispatchConfig, drain
from replenish.orders.outbox import approve
from replenish.orders.proposals import compute_proposals
from replenish.orders.release import LineFacts, OrderFacts, evaluate, load_rules
from replenish.orders.store import ensure_schema, set_status, upsert_proposals


def _engine():
    from replenish.database import engine

    return engine()


def load_inputs(conn, business_date: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    params = pd.read_sql(text("SELECT * FROM marts.dim_replenishment_parameters"), conn)
    hol = pd.read_sql(text("SELECT calendar_date FROM marts.dim_calendar WHERE is_public_holiday"), conn)
    holidays = set(pd.to_datetime(hol["calendar_date"]).dt.date)
    sched = params.groupby(["store_id", "supplier_id"], as_index=False).agg(
        order_weekdays=("order_weekdays", "first"),
        cutoff_time=("cutoff_time", "first"),
        lead_time_days=("lead_time_days", "max"),
        channel=("channel", "first"),
    )
    opps = cal.opportunities(sched, business_date, holidays)
    if not opps:
        return pd.DataFrame(), pd.DataFrame()
    o = pd.DataFrame(
        [
            {
                "store_id": x.store_id,
                "supplier_id": x.supplier_id,
                "order_date": x.order_date,
                "cutoff_at": x.cutoff_at,
                "delivery_date": x.delivery_date,
                "next_delivery_date": x.next_delivery_date,
            }
            for x in opps
        ]
    )
    params["store_id"], params["supplier_id"] = params["store_id"].astype(str), params["supplier_id"].astype(str)
    lines = params.merge(o, on=["store_id", "supplier_id"]).merge(
        sched[["store_id", "supplier_id", "channel"]].astype({"store_id": str, "supplier_id": str}),
        on=["store_id", "supplier_id"],
        suffixes=("", "_o"),
    )
    inv = pd.read_sql(
        text("""SELECT DISTINCT ON (store_id, item_id) store_id::text, item_id::text, as_of_date, on_hand_qty
        FROM marts.fct_inventory_position WHERE as_of_date <= :d ORDER BY store_id, item_id, as_of_date DESC"""),
        conn,
        params={"d": business_date},
    )
    lines["item_id"] = lines["item_id"].astype(str)
    lines = lines.merge(inv, on=["store_id", "item_id"], how="left")
    lines["as_of_date"] = lines["as_of_date"].fillna(pd.Timestamp(business_date))
    lines["on_hand_qty"] = lines["on_hand_qty"].fillna(0)
    oo = pd.read_sql(
        text("SELECT store_id::text, item_id::text, due_date, open_qty FROM marts.fct_open_orders WHERE open_qty > 0"),
        conn,
    )
    if not oo.empty:
        m = (
            lines[["store_id", "item_id", "delivery_date", "shelf_life_days"]]
            .reset_index()
            .merge(oo, on=["store_id", "item_id"])
        )
        due, dl = pd.to_datetime(m["due_date"]), pd.to_datetime(m["delivery_date"])
        m = m[due < dl]
        m["exp"] = m["open_qty"].where((dl[m.index] - due[m.index]).dt.days >= m["shelf_life_days"].fillna(10_000), 0)
        agg = m.groupby("index")[["open_qty", "exp"]].sum()
        lines["on_order_qty"] = agg["open_qty"].reindex(lines.index).fillna(0).to_numpy()
        lines["on_order_expiring_qty"] = agg["exp"].reindex(lines.index).fillna(0).to_numpy()
    # The proposals read targets after the oldest stock snapshot (sales before the delivery) up to the windows' end.
    oldest = pd.to_datetime(lines["as_of_date"]).min()
    first_target = (min(oldest.date(), business_date) if pd.notna(oldest) else business_date) + dt.timedelta(days=1)
    fc = pd.read_sql(
        text(f"""SELECT DISTINCT ON (store_id, item_id, target_date) store_id::text, item_id::text,
            target_date, p10, p50, p90, is_flagged FROM forecast.forecasts
        WHERE origin_date <= :d AND origin_date >= {_FIRST_ORIGIN_SQL} AND target_date >= :t
        ORDER BY store_id, item_id, target_date, origin_date DESC"""),
        conn,
        params={"d": business_date, "t": first_target},
    )
    return lines, fc


# Earliest forecast origin that can hold a target on or after :t: the latest origin's horizon back from :t. It bounds
# the scan of forecast.forecasts (primary key leads with origin_date), which grows by one origin every night.
_FIRST_ORIGIN_SQL = """(CAST(:t AS date) - COALESCE((SELECT max(horizon) FROM forecast.forecasts
        WHERE origin_date = (SELECT max(origin_date) FROM forecast.forecasts WHERE origin_date <= :d)), 0))"""


def propose(business_date: dt.date, run_id: str, *, mov_policy: str = "top_up",
            store_ids: list[int] | list[str] | None = None) -> dict:
    """Proposals for the date's order opportunities; ``store_ids`` limits them to one partition of stores
    (orders are per store and supplier, so partitions never touch each other's orders)."""
    eng = _engine()
    stores = None if store_ids is None else sorted({str(s) for s in store_ids})
    with eng.begin() as conn:
        ensure_schema(conn)
        lines, fc = load_inputs(conn, business_date)
        if stores is not None and not lines.empty:
            lines = lines[lines["store_id"].isin(stores)]
            fc = fc[fc["store_id"].isin(stores)]
        if lines.empty:
            return {"orders": 0, "lines": 0}
        res = compute_proposals(lines, fc, mov_policy=mov_policy, explain=False)
        first = lines.groupby(["store_id", "supplier_id"], as_index=False)[["cutoff_at", "channel"]].first()
        orders = res.orders.astype({"store_id": str, "supplier_id": str}).merge(
            first, on=["store_id", "supplier_id"], how="left"
        )
        reasons = res.lines.groupby("order_id")["cap_below_moq"].any()
        orders["reasons"] = [
            r + (["cap_below_moq"] if reasons.get(oid, False) else [])
            for r, oid in zip(orders["reasons"], orders["order_id"], strict=True)
        ]
        active = res.orders.loc[res.orders.order_value_cents > 0, "order_id"]
        existing = {
            r[0]
            for r in conn.execute(
                text("SELECT order_id, store_id FROM orders.purchase_orders WHERE order_date = :d"),
                {"d": business_date},
            )
            if stores is None or str(r[1]) in stores
        }
        keep = set(active) | existing
        ln = res.lines[
            res.lines.order_id.isin(keep) & ((res.lines.proposed_qty > 0) | res.lines.order_id.isin(existing))
        ]
        out = upsert_proposals(conn, orders[orders.order_id.isin(keep)], ln, run_id=run_id)
    return {"orders": out["orders_created"], "lines": out["lines_written"], **out}


BERLIN = "Europe/Berlin"
USUAL_N = 4  # deliveries averaged for the usual quantity
SALES_LOOKBACK_DAYS = 28  # fallback: mean daily sales over this window x coverage days


def _reevaluable_sql() -> str:
    # 'proposed', or 'in_review' put there by a previous release run and untouched by a person (no events of
    # other actors, no line edits): re-running release after fixed facts/rules re-decides those.
    return """SELECT * FROM orders.purchase_orders p WHERE order_date = :d AND (status = 'proposed' OR (
        status = 'in_review' AND NOT EXISTS (SELECT 1 FROM orders.order_events e WHERE e.order_id = p.order_id
            AND e.actor NOT LIKE 'system:%%' AND e.actor NOT LIKE 'release:%%')
        AND NOT EXISTS (SELECT 1 FROM orders.order_lines l WHERE l.order_id = p.order_id AND l.edited_by IS NOT NULL)))
        ORDER BY order_id FOR UPDATE SKIP LOCKED""".replace("%%", "%")


def release(business_date: dt.date, run_id: str, *, rules_path=None, now: dt.datetime | None = None) -> dict:
    rules = load_rules(rules_path)  # malformed -> RuleConfigError before touching anything
    eng = _engine()
    auto = review = 0
    reasons_count: dict[str, int] = {}
    with eng.begin() as conn:
        ensure_schema(conn)
        orders = conn.execute(text(_reevaluable_sql()), {"d": business_date}).mappings().all()
        gate = _safe(
            conn,
            "SELECT store_id::text, NOT bool_or(is_automation_blocked) FROM ops.quality_gate "
            "WHERE business_date = :d GROUP BY store_id",
            {"d": business_date},
        )
        categories = _safe(
            conn,
            "SELECT DISTINCT ON (item_id) item_id::text, category FROM marts.dim_items "
            "ORDER BY item_id, snapshot_date DESC",
            {},
        )
        all_lines = (
            conn.execute(
                text(
                    "SELECT order_id, item_id, final_qty, explanation FROM orders.order_lines "
                    "WHERE order_id = ANY(:ids) ORDER BY order_id, item_id"
                ),
                {"ids": [o["order_id"] for o in orders]},
            )
            .mappings()
            .all()
        )
        by_order = {o["order_id"]: o for o in orders}
        keys = [
            LineKey(
                str(by_order[ln["order_id"]]["store_id"]),
                str(by_order[ln["order_id"]]["supplier_id"]),
                str(ln["item_id"]),
                by_order[ln["order_id"]]["delivery_date"],
                int((ln["explanation"] or {}).get("coverage_days") or 1),
            )
            for ln in all_lines
        ]
        usual = usual_quantities(conn, keys, business_date)
        promo = promotions(conn, keys)
        flags = forecast_flags(conn, keys, business_date)
        snapshots = _snapshots(conn, business_date)
        allows = _allows_auto_all(conn)
        line_facts: dict[str, list[LineFacts]] = {}
        for ln, (usual_qty, new_item), is_promo, (flagged, fallback) in zip(
            all_lines, usual, promo, flags, strict=True
        ):
            expl = ln["explanation"] or {}
            line_facts.setdefault(ln["order_id"], []).append(
                LineFacts(
                    ln["item_id"],
                    int(ln["final_qty"]),
                    category=categories.get(str(ln["item_id"])),
                    usual_qty=usual_qty,
                    interval_width=expl.get("interval_width"),
                    is_promotion=is_promo,
                    is_new_item=new_item,
                    forecast_flagged=flagged,
                    forecast_fallback=fallback,
                )
            )
        for o in orders:
            snap_age, snap_date = snapshot_freshness(snapshots.get(str(o["store_id"])), business_date, now)
            lf = line_facts.get(o["order_id"], [])
            facts = OrderFacts(
                o["order_id"],
                o["store_id"],
                o["supplier_id"],
                float(o["order_value"] or 0),
                gate.get(o["store_id"]),
                snap_age,
                allows.get((str(o["store_id"]), str(o["supplier_id"])), False),
                lf,
                tuple(r for r in (o["reasons"] or ()) if r in _PROPOSAL_REASONS)
                if o["status"] == "in_review"
                else tuple(o["reasons"] or ()),
                snapshot_date=snap_date,
                business_date=business_date,
            )
            why = evaluate(facts, rules)
            if why:
                if o["status"] != "in_review" or list(o["reasons"] or ()) != why:
                    set_status(conn, o["order_id"], "in_review", f"release:{run_id}", reasons=why)
                review += 1
                for r in why:
                    code = r.split(":")[0]
                    reasons_count[code] = reasons_count.get(code, 0) + 1
            else:
                conn.execute(
                    text("UPDATE orders.purchase_orders SET reasons = '{}' WHERE order_id = :o"), {"o": o["order_id"]}
                )
                approve(conn, o["order_id"], actor=f"release:{run_id}:rules-v{rules.version}", auto=True)
                auto += 1
        # Touchless rate per business date over ALL of that day's orders (a re-run only re-evaluates
        # the open ones): recomputed from the orders themselves and replaced, never appended.
        conn.execute(text("DELETE FROM orders.release_stats WHERE business_date = :d"), {"d": business_date})
        conn.execute(
            text(
                """INSERT INTO orders.release_stats
                       (run_id, business_date, supplier_id, store_id, orders, auto_released, touchless_rate,
                        rules_version)
                   SELECT :r, :d, supplier_id::text, store_id::text, count(*),
                          count(*) FILTER (WHERE left(released_by, 8) = 'release:'),
                          round(count(*) FILTER (WHERE left(released_by, 8) = 'release:')::numeric / count(*), 4),
                          :v
                   FROM orders.purchase_orders WHERE order_date = :d
                   GROUP BY supplier_id, store_id"""
            ),
            {"r": run_id, "d": business_date, "v": str(rules.version)},
        )
    return {"auto": auto, "review": review, "reasons": reasons_count}


# reasons written by propose (kept when an in_review order is re-evaluated; release reasons are recomputed)
_PROPOSAL_REASONS = ("below_min_order_value", "cap_below_moq")


def _safe(conn, sql, params):
    try:
        with conn.begin_nested():
            return dict(conn.execute(text(sql), params).fetchall())
    except Exception:  # noqa: BLE001 - upstream table not built yet -> gate missing -> review
        return {}


def snapshot_freshness(ts: dt.datetime | None, business_date: dt.date, now: dt.datetime | None = None):
    """(age in hours, local Europe/Berlin date) of a stock snapshot, judged against the business date.

    The reference time is the end of the business day in Berlin (the data may be historical: the wall clock
    says nothing about it), or ``now`` when that is earlier (a run during the business day)."""
    from zoneinfo import ZoneInfo

    if ts is None:
        return None, None
    tz = ZoneInfo(BERLIN)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    eod = dt.datetime.combine(business_date + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    ref = min(now, eod) if now is not None else eod
    return max((ref - ts).total_seconds() / 3600, 0.0), ts.astimezone(tz).date()


def _snapshots(conn, business_date) -> dict:
    """Latest stock snapshot time per store (as of the business date), for all stores in one query."""
    return _safe(
        conn,
        "SELECT store_id::text, max(snapshot_at) FROM marts.fct_inventory_position WHERE as_of_date <= :d "
        "GROUP BY store_id",
        {"d": business_date},
    )


def _allows_auto_all(conn) -> dict:
    """Whether automatic orders are allowed, per (store, supplier), for all pairs in one query."""
    return {
        (r[0], r[1]): bool(r[2])
        for r in _rows(
            conn,
            "SELECT store_id::text, supplier_id::text, bool_and(allows_auto_order) "
            "FROM marts.dim_replenishment_parameters GROUP BY store_id, supplier_id",
            {},
        )
    }


def _usual(conn, store_id, supplier_id, item_id, delivery_date, business_date, coverage_days=1):
    """(usual quantity, is_new_item) of one line: see ``usual_quantities``."""
    key = LineKey(str(store_id), str(supplier_id), str(item_id), delivery_date, coverage_days)
    return usual_quantities(conn, [key], business_date)[0]


@dataclass(frozen=True)
class LineKey:
    store_id: str
    supplier_id: str
    item_id: str
    delivery_date: dt.date
    coverage_days: int = 1


def _unnest(keys: list[LineKey]) -> tuple[str, dict]:
    """A CTE ``k`` with one row per key (n = position), for set-based lookups instead of one query per line."""
    # store_int/item_int: the ids as the warehouse's integer keys (NULL when not numeric), so lookups use its indexes
    cte = """k AS MATERIALIZED (SELECT k.*,
            CASE WHEN k.store_id ~ '^[0-9]{1,9}$' THEN CAST(k.store_id AS integer) END AS store_int,
            CASE WHEN k.item_id ~ '^[0-9]{1,9}$' THEN CAST(k.item_id AS integer) END AS item_int
        FROM unnest(CAST(:k_s AS text[]), CAST(:k_p AS text[]), CAST(:k_i AS text[]),
        CAST(:k_dd AS date[]), CAST(:k_c AS int[])) WITH ORDINALITY
        AS k(store_id, supplier_id, item_id, delivery_date, coverage_days, n))"""
    return cte, {
        "k_s": [k.store_id for k in keys],
        "k_p": [k.supplier_id for k in keys],
        "k_i": [k.item_id for k in keys],
        "k_dd": [k.delivery_date for k in keys],
        "k_c": [max(int(k.coverage_days or 1), 1) for k in keys],
    }


def _rows(conn, sql, params) -> list:
    try:
        with conn.begin_nested():
            return list(conn.execute(text(sql), params).all())
    except Exception:  # noqa: BLE001 - upstream table not built yet -> no facts from it
        return []


def usual_quantities(conn, keys: list[LineKey], business_date: dt.date) -> list[tuple[float | None, bool]]:
    """(usual quantity, is_new_item) per line, in the order of ``keys``. Sources in order: our own sent orders
    (last 4 before the delivery); the retailer's order history (latest state per po_id/line_no:
    staging.stg_mms__purchase_orders, ordered on or before the business date): mean of the last 4 deliveries of the
    same store x item on the delivery's weekday, else the last 4 deliveries; else the mean daily sales of the last 28
    days x coverage days. No history anywhere -> (None, True). Three set-based queries for all lines of a run, each
    reading only the rows it needs through an index (per key: the newest deliveries; per store x item: 28 days)."""
    if not keys:
        return []
    cte, params = _unnest(keys)
    params |= {"bd": business_date, "n": USUAL_N, "lb": SALES_LOOKBACK_DAYS}
    own = dict(
        _rows(
            conn,
            f"""WITH {cte} SELECT k.n, (SELECT avg(final_qty) FROM (SELECT l.final_qty FROM orders.order_lines l
            JOIN orders.purchase_orders p USING (order_id) WHERE p.store_id = k.store_id
            AND p.supplier_id = k.supplier_id AND l.item_id = k.item_id AND p.status IN ('sent', 'acknowledged')
            AND p.delivery_date < k.delivery_date ORDER BY p.delivery_date DESC LIMIT :n) x) FROM k""",
            params,
        )
    )
    # The newest deliveries per key, read backwards through the (store_id, item_id[, due_weekday], due_date) indexes.
    deliveries = """SELECT sum(p.quantity) AS qty FROM staging.stg_mms__purchase_orders p
        WHERE p.store_id = k.store_int AND p.item_id = k.item_int AND p.due_date < k.delivery_date
          AND p.order_date <= :bd {extra}
        GROUP BY p.due_date ORDER BY p.due_date DESC LIMIT :n"""
    same_weekday = "AND p.due_weekday = CAST(extract(isodow FROM k.delivery_date) AS integer)"
    history = {
        r[0]: (r[1], r[2])
        for r in _rows(
            conn,
            f"""WITH {cte} SELECT k.n,
                   (SELECT avg(qty) FROM ({deliveries.format(extra=same_weekday)}) a),
                   (SELECT avg(qty) FROM ({deliveries.format(extra="")}) b)
            FROM k""",
            params,
        )
    }
    sales = {
        (r[0], r[1]): r[2]
        for r in _rows(
            conn,
            f"""WITH {cte}, pairs AS (SELECT DISTINCT store_int, item_int FROM k)
            SELECT d.store_id::text, d.item_id::text, avg(d.units_sold) FROM marts.fct_daily_demand d
            JOIN pairs ON d.store_id = pairs.store_int AND d.item_id = pairs.item_int
            WHERE d.demand_date <= :bd AND d.demand_date > CAST(:bd AS date) - :lb GROUP BY 1, 2""",
            params,
        )
    }
    out: list[tuple[float | None, bool]] = []
    for n, k in enumerate(keys, start=1):
        same_weekday_qty, last = history.get(n, (None, None))
        mean_sales = sales.get((k.store_id, k.item_id))
        if own.get(n) is not None:
            out.append((float(own[n]), False))
        elif same_weekday_qty is not None or last is not None:
            out.append((float(same_weekday_qty if same_weekday_qty is not None else last), False))
        elif mean_sales is not None:
            out.append((float(mean_sales) * max(int(k.coverage_days or 1), 1), False))
        else:
            out.append((None, True))
    return out


def promotions(conn, keys: list[LineKey]) -> list[bool]:
    """Whether each line's item is on promotion at its store on the delivery date."""
    if not keys:
        return []
    cte, params = _unnest(keys)
    found = dict(
        _rows(
            conn,
            f"""WITH {cte},
            d AS MATERIALIZED (SELECT store_id, item_id, driver_date, is_promotion FROM marts.fct_demand_drivers
                WHERE driver_date IN (SELECT DISTINCT delivery_date FROM k))
            SELECT k.n, bool_or(d.is_promotion) FROM k JOIN d
            ON d.store_id = k.store_int AND d.item_id = k.item_int AND d.driver_date = k.delivery_date
            GROUP BY k.n""",
            params,
        )
    )
    return [bool(found.get(n)) for n in range(1, len(keys) + 1)]


def forecast_flags(conn, keys: list[LineKey], business_date: dt.date) -> list[tuple[bool, bool]]:
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
                FROM forecast.forecasts WHERE origin_date <= :d AND origin_date >= {_FIRST_ORIGIN_SQL}
                  AND target_date >= :t),
            f AS (
                SELECT DISTINCT ON (k.n, fc.target_date) k.n, fc.is_flagged, fc.model_version
                FROM k JOIN fc ON fc.store_id = k.store_int AND fc.item_id = k.item_int
                 AND fc.target_date >= k.delivery_date AND fc.target_date < k.delivery_date + k.coverage_days
                ORDER BY k.n, fc.target_date, fc.origin_date DESC)
            SELECT n, bool_or(is_flagged), bool_or(is_flagged AND model_version IS NULL) FROM f GROUP BY n""",
            params,
        )
    }
    return [found.get(n, (False, False)) for n in range(1, len(keys) + 1)]


def default_channels(settings=None) -> dict:
    from replenish.orders.channels import EdifactChannel, EmailChannel, SupplierApiChannel
    from replenish.settings import get_settings

    s = settings or get_settings()
    return {
        "email": EmailChannel.from_settings(s),
        "api": SupplierApiChannel(),
        "edifact": EdifactChannel(s.edi_outbound_dir),
    }


def dispatch(
    run_id: str | None = None,
    limit: int | None = None,
    *,
    channels=None,
    cfg: DispatchConfig | None = None,
    hooks=None,
    now: dt.datetime | None = None,
) -> dict:
    """Apply cutoff actions due by ``now`` (if given), then drain the outbox."""
    from replenish.orders.cutoff import enforce_cutoffs
    from replenish.settings import get_settings

    eng = _engine()
    with eng.begin() as conn:
        ensure_schema(conn)
    cutoffs = enforce_cutoffs(eng, now, business_today=get_settings().business_today()) if now else {}
    c = drain(
        eng,
        channels or default_channels(),
        business_today=get_settings().business_today(),
        run_id=run_id,
        limit=limit,
        cfg=cfg,
        hooks=hooks,
    )
    return {
        "sent": c["sent"],
        "failed": c["failed"],
        "dead": c["dead"],
        "deduplicated": c["deduplicated"],
        "cutoff": cutoffs,
    }

"""The ordering stages of a nightly run: propose -> release -> dispatch (tables in schema ``orders``).

The nightly run for business date D proposes the orders of order date D + 1 (``clock.order_date_for``):
their cutoffs lie after the run, so a released order goes out before its supplier's cutoff. "Now" for release,
cutoffs and dispatch is ``replenish.clock.now()``, the same clock the platform and the dispatch DAG read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

from replenish import clock, migrations
from replenish.orders import release_facts as facts
from replenish.orders.channels import default_channels
from replenish.orders.dispatcher import DispatchConfig, drain
from replenish.orders.inputs import day_error_correlation, load_inputs
from replenish.orders.order_tables import SYSTEM_ACTOR_RE, add_event, set_status, upsert_proposals
from replenish.orders.outbox import approve
from replenish.orders.proposals import compute_proposals
from replenish.orders.release import CUTOFF_PASSED, Decision, RuleSet, decide, load_rules

log = logging.getLogger(__name__)


def _engine():
    from replenish.database import engine

    return engine()


def propose(business_date: dt.date, run_id: str, *, mov_policy: str = "top_up",
            store_ids: list[int] | None = None) -> dict:
    """Proposals for the order opportunities of the order date after ``business_date``; ``store_ids`` limits them
    to one partition of stores (orders are per store and supplier, so partitions never touch each other's orders).

    Opportunities whose delivery date is already past are history (a backfill): nothing is proposed. Those whose
    cutoff has passed (a run that finished late) are proposed into review with reason ``cutoff_passed`` and one
    alert each, never released automatically."""
    eng = _engine()
    stores = None if store_ids is None else sorted({int(s) for s in store_ids})
    order_date = clock.order_date_for(business_date)
    with eng.begin() as conn:
        migrations.ensure_current(conn)
        now = clock.now(conn)
        lines, fc = load_inputs(conn, business_date)
        if not lines.empty:
            lines = lines[pd.to_datetime(lines["delivery_date"]).dt.date >= now.date()]
        if stores is not None and not lines.empty:
            lines = lines[lines["store_id"].isin(stores)]
            fc = fc[fc["store_id"].isin(stores)]
        if lines.empty:
            return {"orders": 0, "lines": 0, "late": 0}
        res = compute_proposals(lines, fc, mov_policy=mov_policy, explain=False,
                                day_error_correlation=day_error_correlation(conn))
        first = lines.groupby(["store_id", "supplier_id"], as_index=False)[["cutoff_at", "channel"]].first()
        orders = res.orders.merge(first, on=["store_id", "supplier_id"], how="left")
        below_moq = res.lines.groupby("order_id")["cap_below_moq"].any()
        late = {oid for oid, cut in zip(orders["order_id"], orders["cutoff_at"], strict=True) if cut <= now}
        orders["reasons"] = [
            r + (["cap_below_moq"] if below_moq.get(oid, False) else []) + ([CUTOFF_PASSED] if oid in late else [])
            for r, oid in zip(orders["reasons"], orders["order_id"], strict=True)
        ]
        active = res.orders.loc[res.orders.order_value_cents > 0, "order_id"]
        existing = {
            r[0]
            for r in conn.execute(
                text("SELECT order_id, store_id FROM orders.purchase_orders WHERE order_date = :d"), {"d": order_date}
            )
            if stores is None or r[1] in stores
        }
        keep = set(active) | existing
        ln = res.lines[
            res.lines.order_id.isin(keep) & ((res.lines.proposed_qty > 0) | res.lines.order_id.isin(existing))
        ]
        out = upsert_proposals(conn, orders[orders.order_id.isin(keep)], ln, run_id=run_id)
        late_marked = _mark_late(conn, sorted(late & keep), now)
    return {"orders": out["orders_created"], "lines": out["lines_written"], **out, "late": late_marked}


def _mark_late(conn: Connection, order_ids: list[str], now: dt.datetime) -> int:
    """Orders proposed after their cutoff: to review, cutoff handled as 'missed' (once), one alert each."""
    marked = conn.execute(
        text("""UPDATE orders.purchase_orders SET cutoff_action = 'missed', cutoff_handled_at = :now
                WHERE order_id = ANY(:ids) AND cutoff_action IS NULL AND status IN ('proposed', 'in_review')
                RETURNING order_id, store_id, supplier_id, cutoff_at"""),
        {"ids": order_ids, "now": now},
    ).all()
    for r in marked:
        set_status(conn, r.order_id, "in_review", "system:propose")
        conn.execute(
            text("INSERT INTO orders.alerts (order_id, kind, message) VALUES (:o, 'cutoff_missed', :m)"),
            {"o": r.order_id, "m": f"order {r.order_id} (store {r.store_id}, supplier {r.supplier_id}) was proposed "
                                   f"after the supplier's cutoff ({clock.local(r.cutoff_at):%Y-%m-%d %H:%M}): "
                                   "phone it through or reject it"},
        )
    return len(marked)


# Open orders of the order date that release may (re-)decide: not yet past their cutoff, and untouched by a person
# (no event and no line edit of an actor outside the system's own); a cutoff action or a person settles an order.
_REEVALUABLE_SQL = """SELECT * FROM orders.purchase_orders p
    WHERE order_date = :d AND status IN ('proposed', 'in_review') AND cutoff_action IS NULL
      AND (cutoff_at IS NULL OR cutoff_at > :now)
      AND NOT EXISTS (SELECT 1 FROM orders.order_events e WHERE e.order_id = p.order_id AND e.actor !~ :sys)
      AND NOT EXISTS (SELECT 1 FROM orders.order_lines l WHERE l.order_id = p.order_id
                      AND l.edited_by IS NOT NULL AND l.edited_by !~ :sys)
    ORDER BY order_id FOR UPDATE SKIP LOCKED"""


def release(business_date: dt.date, run_id: str, *, rules_path=None, now: dt.datetime | None = None) -> dict:
    """Decide every open, untouched order of the nightly's order date: release it (capping doubtful lines when the
    rules say so) or route it to review with reasons a buyer can read. Re-running re-decides the same orders."""
    rules = load_rules(rules_path)  # malformed -> RuleConfigError before touching anything
    order_date = clock.order_date_for(business_date)
    auto = review = capped = 0
    reasons_count: dict[str, int] = {}
    with _engine().begin() as conn:
        migrations.ensure_current(conn)
        now = now or clock.now(conn)
        orders = conn.execute(text(_REEVALUABLE_SQL), {"d": order_date, "now": now, "sys": SYSTEM_ACTOR_RE}
                              ).mappings().all()
        order_facts = facts.order_facts(conn, orders, business_date, now)
        terms = facts.supplier_terms(conn)
        for o, of in zip(orders, order_facts, strict=True):
            decision = decide(of, rules)
            mov = terms.get((o["store_id"], o["supplier_id"]), facts.SupplierTerms(False, 0.0))
            if decision.released and decision.caps and facts.value_after(of, decision) < mov.min_order_value:
                decision = Decision(["below_min_order_value"])
            actor = f"release:{run_id}:rules-v{rules.version}"
            if decision.reasons:
                _hold(conn, o, decision.reasons, actor)
                review += 1
                for r in decision.reasons:
                    code = r.split(":")[0]
                    reasons_count[code] = reasons_count.get(code, 0) + 1
            else:
                capped += _apply_caps(conn, o["order_id"], decision, actor)
                if o["reasons"]:
                    add_event(conn, o["order_id"], actor, "reasons", ",".join(o["reasons"]), "")
                conn.execute(text("UPDATE orders.purchase_orders SET reasons = '{}' WHERE order_id = :o"),
                             {"o": o["order_id"]})
                approve(conn, o["order_id"], actor=actor, auto=True)
                auto += 1
        _record_stats(conn, run_id, business_date, order_date, rules)
    return {"auto": auto, "review": review, "capped_lines": capped, "reasons": reasons_count,
            "order_date": order_date.isoformat()}


def _hold(conn: Connection, o: Any, reasons: list[str], actor: str) -> None:
    """To review with these reasons; reasons of a cutoff action are never dropped (they are not re-decided)."""
    if o["status"] != "in_review":
        set_status(conn, o["order_id"], "in_review", actor, reasons=reasons)
    elif list(o["reasons"] or ()) != reasons:
        conn.execute(text("UPDATE orders.purchase_orders SET reasons = :r, updated_at = :now WHERE order_id = :o"),
                     {"r": reasons, "o": o["order_id"], "now": clock.now(conn)})
    if list(o["reasons"] or ()) != reasons:
        add_event(conn, o["order_id"], actor, "reasons", ",".join(o["reasons"] or ()), ",".join(reasons))


def _apply_caps(conn: Connection, order_id: str, d: Decision, actor: str) -> int:
    """Cut doubtful lines to their safe quantity: a system edit (``edited_by`` = the release actor, so a later
    re-proposal resets it and release decides again), with the reason in the audit trail and the explanation."""
    for c in d.caps:
        conn.execute(
            text("""UPDATE orders.order_lines SET final_qty = :q, edited_by = :a, edited_at = :now, edit_reason = :r,
                    explanation = explanation || CAST(:e AS jsonb) WHERE order_id = :o AND item_id = :i"""),
            {"q": c.to_qty, "a": actor, "r": c.reason, "o": order_id, "i": c.item_id, "now": clock.now(conn),
             "e": json.dumps({"release_cap": {"from": c.from_qty, "to": c.to_qty, "reason": c.reason,
                                              "detail": c.detail}})},
        )
        add_event(conn, order_id, actor, f"line_capped:{c.item_id}", c.from_qty, c.to_qty)
    if d.caps:
        conn.execute(
            text("""UPDATE orders.purchase_orders p SET order_value = v.value FROM (
                    SELECT round(sum(final_qty * COALESCE((explanation -> 'risk' ->> 'unit_cost')::numeric, 0)), 2)
                    AS value FROM orders.order_lines WHERE order_id = :o) v WHERE p.order_id = :o"""),
            {"o": order_id},
        )
    return len(d.caps)


def _record_stats(conn: Connection, run_id: str, business_date: dt.date, order_date: dt.date, rules: RuleSet) -> None:
    """Touchless rate per business date over ALL orders of its order date (a re-run only re-decides the open ones):
    recomputed from the orders themselves and replaced, never appended."""
    conn.execute(text("DELETE FROM orders.release_stats WHERE business_date = :d"), {"d": business_date})
    conn.execute(
        text(
            """INSERT INTO orders.release_stats
                   (run_id, business_date, supplier_id, store_id, orders, auto_released, touchless_rate,
                    rules_version)
               SELECT :r, :d, supplier_id, store_id, count(*),
                      count(*) FILTER (WHERE left(released_by, 8) = 'release:'),
                      round(count(*) FILTER (WHERE left(released_by, 8) = 'release:')::numeric / count(*), 4),
                      :v
               FROM orders.purchase_orders WHERE order_date = :od
               GROUP BY supplier_id, store_id"""
        ),
        {"r": run_id, "d": business_date, "od": order_date, "v": str(rules.version)},
    )


def dispatch(
    run_id: str | None = None,
    limit: int | None = None,
    *,
    channels=None,
    cfg: DispatchConfig | None = None,
    hooks=None,
    now: dt.datetime | None = None,
    order_ids: list[str] | None = None,
) -> dict:
    """Apply the cutoff actions due by ``now`` (default: the clock), then drain the outbox."""
    from replenish.orders.cutoff import enforce_cutoffs

    eng = _engine()
    with eng.begin() as conn:
        migrations.ensure_current(conn)
        now = now or clock.now(conn)
    cutoffs = enforce_cutoffs(eng, now, business_today=now.date())
    c = drain(eng, channels or default_channels(), business_today=now.date(), run_id=run_id, limit=limit, cfg=cfg,
              hooks=hooks, order_ids=order_ids)
    log.info("dispatch at %s: %s", now.isoformat(), {k: v for k, v in c.items() if v} or "nothing due")
    return {
        "sent": c["sent"],
        "failed": c["failed"],
        "dead": c["dead"],
        "deduplicated": c["deduplicated"],
        "expired": c.get("expired", 0),
        "possible_duplicates": c.get("possible_duplicates", 0),
        "kept_on_disk": c.get("kept_on_disk", 0),
        "cutoff": cutoffs,
    }

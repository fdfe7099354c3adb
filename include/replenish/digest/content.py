"""What one buyer's digest says for a business date, read from the warehouse.

Scope: an order belongs to a buyer when its supplier is one of the buyer's suppliers or one of its
lines is an item of the buyer's categories (``platform.user_scopes``); the same test applies to the
forecasts compared with last year (supplier via ``marts.dim_replenishment_parameters``). Stores the
quality gate blocked are shown to every buyer, with the gate's reasons in words: their orders all go to review.

Every query tolerates upstream tables that are not built yet (a fresh warehouse): the section is then
empty rather than the digest failing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from replenish.orders.channels.base import KEPT_ON_DISK_SQL
from replenish.orders.outbox import DELIVERY_PASSED

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from replenish.platform.accounts import User

MAX_LISTED = 25  # rows listed per section; the counts are always complete
# An order cancelled once its delivery date was over is told in the first digest after it, up to this many days
# after that date (a dispatch down for a night cancels it a night late); older ones have had their alert.
MISSED_LOOKBACK_DAYS = 7


@dataclass
class Thresholds:
    yoy_share: float = 0.5
    yoy_min_units: float = 5.0
    horizon_days: int = 7


@dataclass
class BuyerDigest:
    business_date: str
    buyer: dict[str, Any]
    review: list[dict[str, Any]] = field(default_factory=list)
    review_count: int = 0
    auto: dict[str, Any] = field(default_factory=dict)
    blocked_stores: list[dict[str, Any]] = field(default_factory=list)
    blocked_store_count: int = 0
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    # the orders never sent and cancelled once their delivery date was over, not told in an earlier digest
    missed_deliveries: list[dict[str, Any]] = field(default_factory=list)
    missed_delivery_count: int = 0
    missed_delivery_ids: list[str] = field(default_factory=list)   # all of them: what later digests do not repeat
    yoy_outliers: list[dict[str, Any]] = field(default_factory=list)
    yoy_outlier_count: int = 0
    # the earlier nights' forecasts against what sold (replenish.forecasting.accuracy): the model's drift and the
    # buyer's items whose stock-out days are off their target, in words
    forecast_drift: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def exception_count(self) -> int:
        return (max(self.blocked_store_count, len(self.blocked_stores)) + len(self.dead_letters)
                + max(self.missed_delivery_count, len(self.missed_deliveries))
                + self.yoy_outlier_count + len(self.forecast_drift))


def _exists(conn: Connection, *tables: str) -> bool:
    return all(conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": t}).scalar() for t in tables)


def _num(v: Any) -> float | None:
    return None if v is None else float(v) if isinstance(v, Decimal | float | int) else v


def _order_scope(conn: Connection) -> str:
    """SQL predicate on alias ``p`` (orders.purchase_orders) for the buyer's suppliers / categories."""
    if _exists(conn, "marts.dim_items"):
        by_category = """EXISTS (SELECT 1 FROM orders.order_lines l JOIN marts.dim_items i
                                  ON i.item_id = l.item_id
                                 WHERE l.order_id = p.order_id AND i.category = ANY(:categories))"""
    else:
        by_category = "false"
    return f"(p.supplier_id = ANY(:suppliers) OR {by_category})"


def buyer_digest(conn: Connection, user: User, business_date: dt.date, th: Thresholds,
                 accuracy: dict[str, Any] | None = None) -> BuyerDigest:
    """One buyer's digest (the caller has migrated the database: only the dbt marts may be missing). ``accuracy``:
    :func:`night_accuracy`'s record, read once for all the buyers (None: no drift section)."""
    scope = {"suppliers": list(user.ids("supplier")), "categories": list(user.scope("category"))}
    d = BuyerDigest(
        business_date=business_date.isoformat(),
        buyer={"user_id": user.user_id, "username": user.username, "email": user.email,
               "display_name": user.display_name, **scope},
    )
    from replenish import clock

    # the nightly for the business date proposed the orders of the next day (replenish.clock)
    p = {**scope, "d": business_date, "od": clock.order_date_for(business_date)}
    where = _order_scope(conn)
    # Awaiting review: still open and still deliverable, the earliest cutoff first.
    rows = conn.execute(
        text(f"""SELECT p.order_id, p.store_id, p.supplier_id, p.delivery_date, p.cutoff_at, p.reasons,
                        p.order_value
                 FROM orders.purchase_orders p
                 WHERE p.status IN ('proposed', 'in_review') AND p.order_date <= :od
                   AND p.delivery_date > :od AND {where}
                 ORDER BY p.cutoff_at NULLS LAST, p.order_id"""),
        p,
    ).mappings().all()
    from replenish.display_names import names

    nm = names(conn)

    def named(r: dict[str, Any]) -> dict[str, Any]:
        """The row with the store's and supplier's display names (None where the marts have none)."""
        return {**r, "store_name": nm["store"].get(r["store_id"]),
                **({"supplier_name": nm["supplier"].get(r["supplier_id"])} if "supplier_id" in r else {})}

    d.review_count = len(rows)
    d.review = [named({**r, "reasons": list(r["reasons"] or ()), "order_value": _num(r["order_value"])})
                for r in rows[:MAX_LISTED]]
    # Released by the rules (not by a person or a cutoff action) for today's order opportunities.
    auto = conn.execute(
        text(f"""SELECT count(*) AS released, coalesce(sum(p.order_value), 0) AS value,
                        count(*) FILTER (WHERE p.status IN ('sent', 'acknowledged')) AS sent,
                        coalesce(sum(p.order_value) FILTER (WHERE p.status IN ('sent', 'acknowledged')), 0)
                            AS sent_value,
                        count(*) FILTER (WHERE p.status IN ('sent', 'acknowledged') AND {KEPT_ON_DISK_SQL})
                            AS kept_on_disk
                 FROM orders.purchase_orders p
                 WHERE p.order_date = :od AND left(p.released_by, 8) = 'release:' AND {where}"""),
        p,
    ).mappings().one()
    d.auto = {k: _num(v) for k, v in auto.items()}
    dead = conn.execute(
        text(f"""SELECT p.order_id, p.store_id, p.supplier_id, p.delivery_date, o.channel, o.attempts,
                        o.last_error
                 FROM orders.outbox o JOIN orders.purchase_orders p ON p.order_id = o.order_id
                 WHERE o.status = 'dead_letter' AND p.order_date = :od AND {where}
                 ORDER BY p.order_id"""),
        p,
    ).mappings().all()
    d.dead_letters = [named(dict(r)) for r in dead[:MAX_LISTED]]
    # The night's dispatch (before this digest) cancels what is still unsent for a delivery date that is over; each
    # such order is told once, in the first of this buyer's digests composed after it (as a rule the digest of its
    # delivery date; a night later where that night's dispatch did not run). The earlier digests' payloads say what
    # they told (``missed_delivery_ids``; digests composed before that field: their listed orders).
    missed = conn.execute(
        text(f"""SELECT p.order_id, p.store_id, p.supplier_id, p.delivery_date
                 FROM orders.purchase_orders p
                 WHERE p.status = 'cancelled' AND p.delivery_date <= :d AND p.delivery_date >= :since AND {where}
                   AND EXISTS (SELECT 1 FROM orders.order_events e WHERE e.order_id = p.order_id
                               AND e.event = 'cancel_reason' AND e.to_value = :passed)
                   AND NOT EXISTS (
                       SELECT 1 FROM orders.digest_outbox o
                        WHERE o.user_id = :u AND o.business_date < :d
                          AND (jsonb_exists(o.payload -> 'digest' -> 'missed_delivery_ids', p.order_id)
                               OR o.payload -> 'digest' -> 'missed_deliveries'
                                  @> jsonb_build_array(jsonb_build_object('order_id', p.order_id))))
                 ORDER BY p.delivery_date, p.order_id"""),
        {**p, "passed": DELIVERY_PASSED, "u": user.user_id,
         "since": business_date - dt.timedelta(days=MISSED_LOOKBACK_DAYS)},
    ).mappings().all()
    d.missed_delivery_count = len(missed)
    d.missed_delivery_ids = [r["order_id"] for r in missed]
    d.missed_deliveries = [named(dict(r)) for r in missed[:MAX_LISTED]]
    blocked = _blocked_stores(conn, business_date)
    d.blocked_store_count = len(blocked)
    d.blocked_stores = [named(b) for b in blocked[:MAX_LISTED]]
    if _exists(conn, "marts.fct_daily_demand", "marts.dim_items", "marts.dim_replenishment_parameters",
               "marts.fct_demand_drivers"):
        outliers = _yoy_outliers(conn, p, th)
        d.yoy_outlier_count = len(outliers)
        d.yoy_outliers = [named(o) for o in outliers[:MAX_LISTED]]
    if accuracy is not None:
        d.forecast_drift = _forecast_drift(conn, accuracy, scope)
    return d


def night_accuracy(conn: Connection, business_date: dt.date) -> dict[str, Any] | None:
    """The accuracy verdict the night's forecast stage recorded (``replenish accuracy``'s status, drift, overall
    figures and per-item stock-out days), or None where that stage recorded none."""
    from replenish.forecasting.accuracy import recorded_verdict

    found = recorded_verdict(conn, business_date)
    return None if found is None else found[1]


def _forecast_drift(conn: Connection, doc: dict[str, Any], scope: dict[str, Any]) -> list[str]:
    """The drift ``replenish accuracy`` names: the model's for every buyer, an item's stock-out days for the buyers
    of that item only."""
    from replenish.forecasting.accuracy import drift_reasons

    service = doc["service_by_item"]
    items = set() if not service else {int(r[0]) for r in conn.execute(
        text("""SELECT item_id FROM marts.dim_replenishment_parameters WHERE supplier_id = ANY(:suppliers)
                UNION SELECT item_id FROM marts.dim_items WHERE category = ANY(:categories)"""), scope)}
    return drift_reasons(doc["overall"], [x for x in service if x["item_id"] in items])


def _blocked_stores(conn: Connection, business_date: dt.date) -> list[dict[str, Any]]:
    """Blocked stores with ``reasons`` (check codes) and ``why`` (the gate's sentences; for a verdict recorded
    without them, the checks in words). ``details`` is read through jsonb so a gate table of an older version,
    without the column, still works."""
    from replenish.quality.reasons import check_words

    rows = conn.execute(
        text("""SELECT store_id, reasons, to_jsonb(g) -> 'details' AS details FROM ops.quality_gate g
                WHERE business_date = :d AND is_automation_blocked ORDER BY store_id"""),
        {"d": business_date},
    ).mappings().all()
    out = []
    for r in rows:
        codes = list(r["reasons"] or ())
        details = [str(x) for x in (r["details"] or ()) if x]
        out.append({"store_id": r["store_id"], "reasons": codes,
                    "why": details or [check_words(c) for c in codes] or ["a blocking check failed"]})
    return out


LAST_YEAR_WEEKS = (-1, 0, 1)     # the same weekday 52 weeks back, and the weeks either side of it
LAST_YEAR_MIN_DAYS = 2           # of those days, this many measured demand, or there is no comparison


def _yoy_outliers(conn: Connection, p: dict[str, Any], th: Thresholds) -> list[dict[str, Any]]:
    """Forecast P50 (origin = business date, the next ``horizon_days`` days) against last year's level for the
    same day: the mean of the same weekday 51, 52 and 53 weeks earlier (357, 364, 371 days); flagged when
    |P50 - last year| > share x max(last year, min units). One day alone is no level: a fresh item's single day
    last year is as noisy as the forecast is sure (the demo's buyers got 22 such exceptions a night).

    Only days that measured demand count, and at least LAST_YEAR_MIN_DAYS of the three: the series was selling
    then (a sale in the 28 days up to the span; before a store opened or an item was listed the warehouse holds
    zeros), the store sold something that day (not closed), and it was neither a stock-out (its sales are a lower
    bound) nor a public holiday; nor for a target day that is a public holiday (last year's were ordinary ones).
    On the demo's first night 65 of a buyer's 88 "exceptions" compared forecasts with such days, most with the
    zeros of stores that opened weeks later."""
    lags = [364 - 7 * w for w in LAST_YEAR_WEEKS]
    rows = conn.execute(
        text("""WITH selling AS (
                    SELECT store_id, item_id FROM marts.fct_daily_demand
                    WHERE demand_date BETWEEN CAST(:d AS date) - :lag_max - 28
                                          AND CAST(:d AS date) - :lag_min + :h
                    GROUP BY store_id, item_id HAVING sum(units_sold) > 0),
                open_days AS (
                    SELECT store_id, demand_date FROM marts.fct_daily_demand
                    WHERE demand_date BETWEEN CAST(:d AS date) - :lag_max + 1 AND CAST(:d AS date) - :lag_min + :h
                    GROUP BY store_id, demand_date HAVING sum(units_sold) > 0),
                last_year AS (
                    SELECT f.store_id, f.item_id, f.target_date, f.p50, avg(y.units_sold) AS last_year
                    FROM forecast.forecasts f
                    CROSS JOIN unnest(CAST(:lags AS int[])) AS l(lag)
                    JOIN marts.fct_daily_demand y
                      ON y.store_id = f.store_id AND y.item_id = f.item_id AND y.demand_date = f.target_date - l.lag
                    JOIN open_days o ON o.store_id = y.store_id AND o.demand_date = y.demand_date
                    WHERE f.origin_date = :d AND f.horizon BETWEEN 1 AND :h
                      AND (y.store_id, y.item_id) IN (SELECT store_id, item_id FROM selling)
                      AND NOT coalesce(y.is_stockout, false) AND NOT coalesce(y.is_public_holiday, false)
                    GROUP BY f.store_id, f.item_id, f.target_date, f.p50
                    HAVING count(*) >= :min_days)
                SELECT f.store_id, f.item_id, i.item_name, i.category, f.target_date, f.p50, f.last_year
                FROM last_year f
                JOIN marts.dim_items i ON i.item_id = f.item_id
                LEFT JOIN marts.fct_demand_drivers t
                  ON t.store_id = f.store_id AND t.item_id = f.item_id AND t.driver_date = f.target_date
                WHERE NOT coalesce(t.is_public_holiday, false)
                  AND abs(f.p50 - f.last_year) > :share * greatest(f.last_year, :min_units)
                  AND (i.category = ANY(:categories) OR EXISTS (
                        SELECT 1 FROM marts.dim_replenishment_parameters r
                        WHERE r.store_id = f.store_id AND r.item_id = f.item_id
                          AND r.supplier_id = ANY(:suppliers)))
                ORDER BY abs(f.p50 - f.last_year) / greatest(f.last_year, :min_units) DESC,
                         f.store_id, f.item_id, f.target_date"""),
        {**p, "h": th.horizon_days, "share": th.yoy_share, "min_units": th.yoy_min_units, "lags": lags,
         "lag_max": max(lags), "lag_min": min(lags), "min_days": LAST_YEAR_MIN_DAYS},
    ).mappings().all()
    out = []
    for r in rows:
        p50, ly = float(r["p50"]), float(r["last_year"])
        out.append({"store_id": r["store_id"], "item_id": r["item_id"], "item_name": r["item_name"],
                    "category": r["category"], "target_date": r["target_date"], "p50": round(p50, 1),
                    "last_year": round(ly, 1),
                    "change": round((p50 - ly) / max(ly, th.yoy_min_units), 3)})
    return out

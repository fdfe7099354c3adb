"""The forecasts' accuracy as the orders met it: every stored forecast whose target date is past, against what sold
(``marts.fct_forecast_accuracy``), beside what the model's backtest promised, and the stock-out days the orders
delivered beside the ones they asked for. ``replenish accuracy`` prints it; ``drift`` names what a forecasting team
would look into before trusting the next orders to the model.

Sell-out days (``is_censored``) sold less than their demand. Leaving them out would score the model on the days that
did not sell out, the low ones: on a 1-day item ordered at its P70 that reads a forecast about 10 % too high that is
not. They are scored at their sales, a lower bound of their demand, so the bias and WAPE are bounded, not guessed,
and a sell-out day at or below P90 may have been inside the band or above it: the coverage is the range of both.
Days a store was closed (nothing sold where at least 10 units were expected) are left out, as in the backtest."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection, Engine

WINDOW_DAYS = 28
# Drift: what a month of one chain's forecasts may show before someone should look. The intervals aim at 0.75-0.85
# (issue 18); a month of a few stores moves the realised share by a few points, so only a range wholly outside
# 0.70-0.90 is flagged.
COVERAGE_BAND = (0.70, 0.90)
BIAS_LIMIT = 0.10
WAPE_RATIO_LIMIT = 1.25          # realised WAPE against the backtest's, on the same horizons and weights
STOCKOUT_POINTS_LIMIT = 0.05     # stock-out share of the days with sales, against what the ordering asks for
MIN_ROWS = 200                   # fewer scored rows than this say nothing yet
MIN_SERVICE_DAYS = 100

# Pooled, by horizon and by item in one pass over the window's scores (grouping sets: at chain size the window holds
# ~12 M of them, and three queries read them three times)
_FIGURES = """
select grouping(a.horizon) = 0 as is_by_horizon, grouping(a.item_id) = 0 as is_by_item, a.horizon, a.item_id,
       count(*)                                                         as n,
       count(*) filter (where a.is_censored)                            as censored,
       sum(a.units_sold)                                                as sum_sold,
       sum(a.p50)                                                       as sum_p50,
       sum(a.abs_error)                                                 as sum_abs_error,
       count(*) filter (where not a.is_censored and not a.is_below_p10 and not a.is_above_p90) as n_within_known,
       count(*) filter (where a.is_censored and not a.is_above_p90)     as n_unknown,
       count(*) filter (where not a.is_censored and a.is_below_p10)     as n_below_p10,
       count(*) filter (where a.is_above_p90)                           as n_above_p90,
       min(a.target_date)                                               as first_target_date,
       max(a.target_date)                                               as last_target_date,
       sum(a.abs_error) filter (where b.wape is not null)               as abs_error_backtested,
       sum(b.wape * a.units_sold) filter (where b.wape is not null)     as backtest_abs_error,
       sum(a.units_sold) filter (where b.wape is not null)              as backtest_sold,
       avg(b.coverage)                                                  as backtest_coverage
from marts.fct_forecast_accuracy as a
left join (
    -- the backtest of the series at the horizon, by the model version that made the forecast
    select model_version, store_id, item_id, horizon, sum_abs_err / nullif(sum_y, 0) as wape,
           n_covered::double precision / nullif(n, 0) as coverage
    from forecast.backtest_metrics
) as b
  on b.model_version = a.model_version and b.store_id = a.store_id and b.item_id = a.item_id
 and b.horizon = a.horizon
where a.target_date > :start and a.target_date <= :bd and not a.is_store_closed
group by grouping sets ((), (a.horizon), (a.item_id))
"""

# The days judged: each store x item x day up to D with sales (or sold out) that the stored forecasts covered (before
# them the stock came from the retailer's old ordering), with its ordering parameters, one row per store x item
# however many suppliers deliver it. The target-date bounds inside EXISTS keep the probe to the window's forecasts.
_DAYS = """
    select d.store_id, d.item_id, d.demand_date, d.is_stockout, p.unit_price, p.unit_cost, p.service_level,
           p.shelf_life_days
    from marts.fct_daily_demand as d
    join (
        select store_id, item_id, max(unit_price) as unit_price, max(unit_cost) as unit_cost,
               max(service_level) as service_level, max(shelf_life_days) as shelf_life_days
        from marts.dim_replenishment_parameters
        group by store_id, item_id
    ) as p on p.store_id = d.store_id and p.item_id = d.item_id
    where d.demand_date > :start and d.demand_date <= :bd and (d.units_sold > 0 or d.is_stockout)
      and exists (select 1 from marts.fct_forecast_accuracy as a
                  where a.store_id = d.store_id and a.item_id = d.item_id and a.target_date = d.demand_date
                    and a.target_date > :start and a.target_date <= :bd)
"""

# Why a day with sales sold out: the delivery its stock came from (the latest received within the item's shelf life,
# marts.fct_deliveries) and the Replenish order line for that store, item and delivery date, first match wins.
# A purchase order whose quantity is not what Replenish sent was ordered (or changed) outside Replenish.
CAUSES = {
    "no_delivery": "nothing delivered within its shelf life",
    "short_delivery": "delivered short",
    "ordered_outside": "ordered outside Replenish",
    "changed_by_person": "quantity changed by a person",
    "as_proposed": "sent as Replenish proposed",
}
_WENT_OUT = ("approved", "auto_approved", "queued", "sending", "sent", "acknowledged")

_CAUSES = f"""
with days as ({_DAYS}),
served as (
    select x.store_id, x.item_id, x.is_stockout, x.unit_price, x.unit_cost, x.service_level, x.shelf_life_days,
           v.due_date, v.ordered_qty, v.is_short_delivery
    from days as x
    left join lateral (
        select v.due_date, v.ordered_qty, v.is_short_delivery
        from marts.fct_deliveries as v
        where v.store_id = x.store_id and v.item_id = x.item_id and v.received_date <= x.demand_date
          and v.received_date > x.demand_date - greatest(coalesce(x.shelf_life_days, 1), 1)
        order by v.received_date desc
        limit 1
    ) as v on true
),
-- Replenish's order lines that went out for those delivery dates, one per store x item x date (hash-joined: a
-- probe per day would walk a store's whole order history on servers without skip scans)
replenish_lines as (
    select distinct on (o.store_id, o.delivery_date, l.item_id)
           o.store_id, o.delivery_date, l.item_id, l.final_qty, l.proposed_qty
    from orders.purchase_orders as o
    join orders.order_lines as l on l.order_id = o.order_id
    where o.status in ({", ".join(f"'{w}'" for w in _WENT_OUT)})
      and o.delivery_date between (select min(due_date) from served) and (select max(due_date) from served)
    order by o.store_id, o.delivery_date, l.item_id, o.order_id
)
select s.store_id, s.item_id,
       case when s.due_date is null then 'no_delivery'
            when s.is_short_delivery then 'short_delivery'
            when l.final_qty is null or s.ordered_qty <> l.final_qty then 'ordered_outside'
            when l.final_qty <> l.proposed_qty then 'changed_by_person'
            else 'as_proposed' end                                   as cause,
       count(*)                                                      as days_with_sales,
       count(*) filter (where s.is_stockout)                         as stockout_days,
       max(s.unit_price) as unit_price, max(s.unit_cost) as unit_cost, max(s.service_level) as service_level,
       max(s.shelf_life_days) as shelf_life_days
from served as s
left join replenish_lines as l
  on l.store_id = s.store_id and l.delivery_date = s.due_date and l.item_id = s.item_id
group by 1, 2, 3
"""


def _ratio(num: Any, den: Any) -> float | None:
    return None if num is None or not den else round(float(num) / float(den), 4)


def _figures(r: dict[str, Any]) -> dict[str, Any]:
    n = int(r["n"] or 0)
    return {
        "rows": n,
        "censored_rows": int(r["censored"] or 0),
        "wape": _ratio(r["sum_abs_error"], r["sum_sold"]),
        "bias": _ratio(None if r["sum_p50"] is None else float(r["sum_p50"]) - float(r["sum_sold"] or 0),
                       r["sum_sold"]),
        # a sell-out day at or below P90 is inside the band or above it: the realised coverage lies in this range
        "coverage_low": _ratio(r["n_within_known"], n),
        "coverage_high": _ratio((r["n_within_known"] or 0) + (r["n_unknown"] or 0), n),
        "below_p10": _ratio(r["n_below_p10"], n),
        "above_p90_at_least": _ratio(r["n_above_p90"], n),
        # the backtest scores h = 1..7 of the model versions that have one: compared on those rows alone
        "wape_backtested_rows": _ratio(r["abs_error_backtested"], r["backtest_sold"]),
        "backtest_wape": _ratio(r["backtest_abs_error"], r["backtest_sold"]),
        "backtest_coverage": None if r["backtest_coverage"] is None else round(float(r["backtest_coverage"]), 4),
    }


def _cause_rows(conn: Connection, start: dt.date, bd: dt.date) -> pd.DataFrame:
    """Store x item x cause: the days with sales the stored forecasts covered and how many sold out, with the share
    of sold-out days the store x item's ordering asks for (``asked_share``: 1 - the level the proposals order up to,
    ``orders.proposals.requested_level``). One query: the days are read once."""
    import pandas as pd
    from sqlalchemy import text

    from replenish.orders.proposals import requested_level

    rows = pd.DataFrame(conn.execute(text(_CAUSES), {"start": start, "bd": bd}).mappings().all())
    if rows.empty:
        return pd.DataFrame(columns=list(CAUSE_ROW_COLUMNS))
    s = rows.groupby(["store_id", "item_id"], as_index=False).agg(
        unit_price=("unit_price", "max"), unit_cost=("unit_cost", "max"), service_level=("service_level", "max"),
        shelf_life_days=("shelf_life_days", "max"))
    level = requested_level(s["unit_price"].astype(float).to_numpy(), s["unit_cost"].astype(float).to_numpy(),
                            s["service_level"].astype(float).to_numpy(),
                            (s["shelf_life_days"].astype(int) == 1).to_numpy())
    s = s.assign(asked_share=1 - level)[["store_id", "item_id", "asked_share"]]
    return rows.merge(s, on=["store_id", "item_id"])[list(CAUSE_ROW_COLUMNS)]


# what :func:`_cause_rows` returns and ``forecast.stockout_causes`` keeps per night
CAUSE_ROW_COLUMNS = ("store_id", "item_id", "cause", "days_with_sales", "stockout_days", "asked_share")


def service_by_item(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Per item, over the stores in ``rows`` (:data:`CAUSE_ROW_COLUMNS`): the share of the days with sales that sold
    out beside the share its ordering asks for (weighted by each store's days), and the same days by where their
    stock came from (CAUSES, in that order)."""
    import numpy as np

    if rows.empty:
        return []
    rows = rows.assign(asked_days=rows["asked_share"].astype(float) * rows["days_with_sales"].astype(float))
    out = []
    for item, g in rows.groupby("item_id", sort=True):
        days, sold_out = int(g["days_with_sales"].sum()), int(g["stockout_days"].sum())
        sums = g.groupby("cause", as_index=False)[["days_with_sales", "stockout_days"]].sum()
        by_cause = {str(c): (int(n), int(k)) for c, n, k in sums.itertuples(index=False)}
        causes = {c: {"days_with_sales": by_cause[c][0], "stockout_days": by_cause[c][1],
                      "stockout_share": _ratio(by_cause[c][1], by_cause[c][0])} for c in CAUSES if c in by_cause}
        out.append({"item_id": int(str(item)), "days_with_sales": days, "stockout_days": sold_out,
                    "stockout_share": _ratio(sold_out, days),
                    "asked": None if not days else round(float(np.sum(g["asked_days"])) / days, 4),
                    "causes": causes})
    return out


def _causes_words(causes: dict[str, dict[str, Any]]) -> str:
    """``delivered short 10 of 12 days (83%), ordered outside Replenish 300 of 650 days (46%)``: per cause with
    sold-out days, how many of the days with sales it served sold out; empty where none did."""
    # in CAUSES' order, whatever the order of the mapping (a jsonb record sorts its keys)
    return ", ".join(f"{CAUSES[k]} {c['stockout_days']} of {c['days_with_sales']} days ({c['stockout_share']:.0%})"
                     for k in CAUSES if (c := causes.get(k)) and c["stockout_days"])


def drift_reasons(overall: dict[str, Any], service: list[dict[str, Any]]) -> list[str]:
    """What falls outside the limits above, in words; empty when nothing does or too little is known yet."""
    return [words for _, words in drift_findings(overall, service)]


def drift_findings(overall: dict[str, Any], service: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """:func:`drift_reasons` with the topic of each (``intervals too narrow``, ``item 101 stock-outs``, ...): what
    stays the same from night to night while the figures in the words move."""
    found: list[tuple[str, str]] = []
    band = f"band {COVERAGE_BAND[0]:.0%}-{COVERAGE_BAND[1]:.0%}"
    if overall["rows"] >= MIN_ROWS:
        lo, hi = overall["coverage_low"], overall["coverage_high"]
        if hi is not None and hi < COVERAGE_BAND[0]:
            found.append(("intervals too narrow",
                          f"P10-P90 holds at most {hi:.0%} of what sold ({band}): the intervals are too narrow"))
        if lo is not None and lo > COVERAGE_BAND[1]:
            found.append(("intervals too wide",
                          f"P10-P90 holds at least {lo:.0%} of what sold ({band}): the intervals are too wide"))
        bias = overall["bias"]
        # sales understate a sell-out day's demand, so a bias below the limit is certain; above it, it is an
        # upper bound and only counts where few days sold out
        if bias is not None and bias < -BIAS_LIMIT:
            found.append(("forecasts low", f"forecasts {-bias:.0%} below what sold"))
        if (bias is not None and bias > BIAS_LIMIT
                and overall["censored_rows"] <= 0.1 * overall["rows"]):
            found.append(("forecasts high", f"forecasts {bias:.0%} above what sold"))
        wape, expected = overall["wape_backtested_rows"], overall["backtest_wape"]
        if wape is not None and expected and wape > WAPE_RATIO_LIMIT * expected:
            found.append(("error above the backtest", f"WAPE {wape:.3f} against {expected:.3f} in the model's "
                          f"backtest, on its horizons (more than {WAPE_RATIO_LIMIT:g}x)"))
    for s in service:
        if s["days_with_sales"] >= MIN_SERVICE_DAYS and s["asked"] is not None and s["stockout_share"] is not None:
            gap = s["stockout_share"] - s["asked"]
            if abs(gap) > STOCKOUT_POINTS_LIMIT:
                why = _causes_words(s.get("causes") or {})
                found.append((f"item {s['item_id']} stock-outs",
                              f"item {s['item_id']} sold out on {s['stockout_share']:.0%} of its days with sales, "
                              f"its ordering asks for {s['asked']:.0%}"
                              + (f"; by where the stock came from, sold out: {why}" if why else "")))
    return found


def recorded_verdict(conn: Connection, business_date: dt.date, *, latest: bool = False
                     ) -> tuple[dt.date, dict[str, Any]] | None:
    """The verdict the nightly forecast stage recorded (``ops.stage_results``: status, drift, overall figures, per-item
    stock-out days and causes) for ``business_date``, or with ``latest`` for the last date up to it, and that date;
    None where none was recorded (readers get it without scanning the forecasts again)."""
    from sqlalchemy import text

    row = conn.execute(text(
        f"""SELECT business_date, summary -> 'accuracy' FROM ops.stage_results
            WHERE stage = 'forecast' AND business_date {'<=' if latest else '='} :d AND summary ? 'accuracy'
            ORDER BY business_date DESC LIMIT 1"""), {"d": business_date}).first()
    if row is None or not isinstance(row[1], dict) or not {"overall", "service_by_item"} <= row[1].keys():
        return None
    return row[0], row[1]


def realised_accuracy(engine: Engine, business_date: dt.date, days: int = WINDOW_DAYS) -> dict[str, Any]:
    """The figures of the forecasts whose target dates lie in the ``days`` up to ``business_date``: pooled, by
    horizon and by item, each beside the backtest of the same series and horizons by the model versions that made
    them (weighted by what sold); the stock-out share per item against what its ordering asks for; and the drift
    reasons (``status`` "drift", "ok" or "no data"; "no data" with a ``note`` where the warehouse is not built)."""
    return accuracy_with_store_rows(engine, business_date, days)[0]


def accuracy_with_store_rows(engine: Engine, business_date: dt.date, days: int = WINDOW_DAYS
                             ) -> tuple[dict[str, Any], pd.DataFrame]:
    """:func:`realised_accuracy` and the store x item x cause rows (:data:`CAUSE_ROW_COLUMNS`) its per-item
    stock-out figures were summed from (the nightly keeps them for the stores' own pages)."""
    import pandas as pd
    from sqlalchemy.exc import ProgrammingError

    from replenish.database import is_missing_relation

    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    try:
        with engine.connect() as conn:
            return _accuracy_on(conn, business_date, days)
    except ProgrammingError as exc:
        if not is_missing_relation(exc):
            raise
        empty = _figures({k: None for k in ("n", "censored", "sum_sold", "sum_p50", "sum_abs_error",
                                            "n_within_known", "n_unknown", "n_below_p10", "n_above_p90",
                                            "abs_error_backtested", "backtest_abs_error", "backtest_sold",
                                            "backtest_coverage")})
        return {"business_date": str(business_date), "window_start": str(business_date - dt.timedelta(days - 1)),
                "days": days, "first_target_date": None, "last_target_date": None, "status": "no data",
                "drift": [], "drift_topics": [],
                "note": "the warehouse is not built yet (a nightly run or `replenish build` builds it)",
                "closed_store_rows": 0, "overall": empty, "by_horizon": [], "by_item": [], "service_by_item": []
                }, pd.DataFrame(columns=list(CAUSE_ROW_COLUMNS))


def past_retention(doc: dict[str, Any], today: dt.date, retention_days: int) -> str | None:
    """Words for a window that reaches before the forecasts the nightly keeps (``prune_forecasts`` deletes the
    target dates more than ``retention_days`` before the business date ``today``): those days cannot be scored,
    so the figures cover fewer days than asked. None when the window is inside the retention."""
    kept_from = today - dt.timedelta(days=retention_days)
    if dt.date.fromisoformat(doc["window_start"]) >= kept_from:
        return None
    return (f"target dates before {kept_from} are past the forecast retention ({retention_days} days, "
            "REPLENISH_FORECAST_RETENTION_DAYS): the nightly deletes their forecasts, so fewer days may be scored "
            "than asked")


def _accuracy_on(conn: Connection, business_date: dt.date, days: int) -> tuple[dict[str, Any], pd.DataFrame]:
    from sqlalchemy import text

    start = business_date - dt.timedelta(days=days)
    params = {"start": start, "bd": business_date}

    groups = [dict(r) for r in conn.execute(text(_FIGURES), params).mappings().all()]
    first = next(r for r in groups if not r["is_by_horizon"] and not r["is_by_item"])
    overall = _figures(first)
    by_horizon = sorted(({"horizon": int(r["horizon"]), **_figures(r)} for r in groups if r["is_by_horizon"]),
                        key=lambda r: r["horizon"])
    by_item = sorted(({"item_id": int(r["item_id"]), **_figures(r)} for r in groups if r["is_by_item"]),
                     key=lambda r: r["item_id"])
    closed: int = conn.execute(text("select count(*) from marts.fct_forecast_accuracy where target_date > :start"
                               " and target_date <= :bd and is_store_closed"), params).scalar_one()
    store_rows = _cause_rows(conn, start, business_date)
    service = service_by_item(store_rows)
    findings = drift_findings(overall, service)
    reasons = [words for _, words in findings]
    status = "drift" if reasons else ("no data" if overall["rows"] == 0 else "ok")
    return {"business_date": str(business_date), "window_start": str(start + dt.timedelta(days=1)), "days": days,
            # the target dates scored in the window (none before the first night's forecasts meet their dates)
            "first_target_date": None if first["first_target_date"] is None else str(first["first_target_date"]),
            "last_target_date": None if first["last_target_date"] is None else str(first["last_target_date"]),
            "status": status, "drift": reasons, "drift_topics": [topic for topic, _ in findings],
            "closed_store_rows": int(closed), "overall": overall, "by_horizon": by_horizon, "by_item": by_item,
            "service_by_item": service}, store_rows

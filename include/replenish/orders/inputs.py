"""What a proposal run reads from the warehouse: order opportunities with parameters, stock and open orders, and
the forecasts covering them."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import text

from replenish import clock
from replenish.orders import calendar as cal

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def load_inputs(conn: Connection, business_date: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lines (store x item x supplier of each order opportunity of the order date after ``business_date``, with
    parameters, stock and open orders) and the forecasts they read (latest origin <= business date)."""
    params = pd.read_sql(text("SELECT * FROM marts.dim_replenishment_parameters"), conn)
    hol = pd.read_sql(text("SELECT calendar_date FROM marts.dim_calendar WHERE is_public_holiday"), conn)
    holidays = set(pd.to_datetime(hol["calendar_date"]).dt.date)
    sched = params.groupby(["store_id", "supplier_id"], as_index=False).agg(
        order_weekdays=("order_weekdays", "first"),
        cutoff_time=("cutoff_time", "first"),
        lead_time_days=("lead_time_days", "max"),
        channel=("channel", "first"),
    )
    opps = cal.opportunities(sched, clock.order_date_for(business_date), holidays)
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
    lines = params.merge(o, on=["store_id", "supplier_id"]).merge(
        sched[["store_id", "supplier_id", "channel"]],
        on=["store_id", "supplier_id"],
        suffixes=("", "_o"),
    )
    inv = pd.read_sql(
        text("""SELECT DISTINCT ON (store_id, item_id) store_id, item_id, as_of_date, on_hand_qty
        FROM marts.fct_inventory_position WHERE as_of_date <= :d ORDER BY store_id, item_id, as_of_date DESC"""),
        conn,
        params={"d": business_date},
    )
    lines = lines.merge(inv, on=["store_id", "item_id"], how="left")
    lines["as_of_date"] = lines["as_of_date"].fillna(pd.Timestamp(business_date))
    lines["on_hand_qty"] = lines["on_hand_qty"].fillna(0)
    oo = pd.read_sql(
        text("SELECT store_id, item_id, due_date, open_qty FROM marts.fct_open_orders WHERE open_qty > 0"),
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
        text(f"""SELECT DISTINCT ON (store_id, item_id, target_date) store_id, item_id,
            target_date, p10, p50, p90, is_flagged FROM forecast.forecasts
        WHERE origin_date <= :d AND origin_date >= {FIRST_ORIGIN_SQL} AND target_date >= :t
        ORDER BY store_id, item_id, target_date, origin_date DESC"""),
        conn,
        params={"d": business_date, "t": first_target},
    )
    return lines, fc


# Earliest forecast origin that can hold a target on or after :t: the latest origin's horizon back from :t. It bounds
# the scan of forecast.forecasts (primary key leads with origin_date), which grows by one origin every night.
FIRST_ORIGIN_SQL = """(CAST(:t AS date) - COALESCE((SELECT max(horizon) FROM forecast.forecasts
        WHERE origin_date = (SELECT max(origin_date) FROM forecast.forecasts WHERE origin_date <= :d)), 0))"""


def day_error_correlation(conn: Connection) -> float | None:
    """The current model's measured correlation of the forecast errors of a window's days (ml.calibration);
    None without a model or a measurement (the proposals then use their default)."""
    row = conn.execute(
        text("SELECT calibration->>'day_error_correlation' FROM forecast.models WHERE is_current")
    ).first()
    return float(row[0]) if row and row[0] is not None else None

"""The simulated world: real demand, the retailer's masters, its history before the window, the calendar.

Everything is built once, in memory, from the bakery panel (``load_panel``) and the seeded retailer
(``build_retailer``); nothing is read from or written to the warehouse. The truth (daily demand of the
window) lives only in :class:`World`; policies get a :class:`Masters` (static facts, the past) and, day by
day, a view of what is known on that day (see ``policies.DayView``). Only the perfect-foresight bound is
handed the demand, explicitly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd

from replenish.data.retailer import ITEM_SUPPLIERS, ITEMS, SHORT_DELIVERY_RATE, SUPPLIERS, Retailer, build_retailer
from replenish.orders import calendar as cal

PAD = 40  # days of arrays past the window end (deliveries after the window, forecast horizons)
HISTORY_WEEKS = 8  # the min/max rule's "historical averages" and the usual-quantity look-back


@dataclass(frozen=True)
class Terms:
    """Per-series (store x item) masters and supplier terms, as arrays aligned with ``Masters.keys``."""

    supplier_id: np.ndarray
    pack: np.ndarray
    moq: np.ndarray
    max_qty: np.ndarray
    lead: np.ndarray
    shelf_life: np.ndarray
    price: np.ndarray
    cost: np.ndarray
    service_level: np.ndarray
    min_order_value: np.ndarray
    order_weekdays: tuple[str, ...]
    category: tuple[str, ...]
    allows_auto: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        return self.price - self.cost


@dataclass(frozen=True)
class Opportunity:
    """An order opportunity of one series on a business date: delivery and the next delivery (day indexes)."""

    delivery: int
    next_delivery: int


@dataclass
class Masters:
    """What every policy may know: masters, the calendar, the retailer's past (dated before the window)."""

    start: pd.Timestamp
    end: pd.Timestamp
    days: pd.DatetimeIndex                    # start .. end + PAD (index 0 = start)
    n_days: int                               # simulated days (start .. end)
    keys: pd.DataFrame                        # store_id, item_id (one row per series)
    terms: Terms
    holidays: frozenset[dt.date]
    opportunities: dict[int, dict[int, Opportunity]]   # business day index -> series -> opportunity
    history: pd.DataFrame                     # neutral frame (ml.data) of the retailer's past: y = sales
    drivers: pd.DataFrame                     # neutral-frame drivers for every date (no y), actual weather
    weather_forecasts: pd.DataFrame           # issue_date, store_id, weather_date, rain, temperature
    history_sales: np.ndarray                 # (HISTORY_WEEKS*7, S) sales of the retailer before the window
    history_orders: pd.DataFrame              # retailer's purchase-order lines before the window: s, due, qty
    initial_lots: np.ndarray                  # (S, max shelf life) stock at the start, lots by expiry
    initial_arrivals: np.ndarray              # (n_days + PAD, S) deliveries ordered before the window
    short_u: np.ndarray | None = field(repr=False, default=None)   # common random numbers for short deliveries
    short_frac: np.ndarray | None = field(repr=False, default=None)
    short_rate: float = SHORT_DELIVERY_RATE

    @property
    def n_series(self) -> int:
        return len(self.keys)

    def day(self, t: int) -> pd.Timestamp:
        return self.days[t]

    def known_drivers(self, t: int, horizon: int) -> pd.DataFrame:
        """Drivers for dates <= day t + horizon as known on day t: calendar and promotions are plans
        (known in advance); weather is the actual up to day t and the forecast issued on day t after it."""
        today = self.days[t]
        until = today + pd.Timedelta(days=horizon)
        d = self.drivers[self.drivers["date"] <= until]
        fut = d["date"] > today
        wf = self.weather_forecasts[self.weather_forecasts["issue_date"] == today]
        if fut.any():
            f = d.loc[fut, ["store_id", "date"]].merge(
                wf.rename(columns={"weather_date": "date"}), on=["store_id", "date"], how="left")
            d = d.copy()
            d.loc[fut, "rain"] = f["rain_mm"].to_numpy()
            d.loc[fut, "temperature"] = f["temperature_c"].to_numpy()
        return d


@dataclass
class World:
    """The masters plus the truth: the real demand of every simulated day (never handed to a policy)."""

    masters: Masters
    demand: np.ndarray                        # (n_days, S) integer units, real and uncensored
    retailer_seed: int


def _terms(keys: pd.DataFrame, suppliers: pd.DataFrame) -> Terms:
    items = ITEMS.set_index("item_id").loc[keys["item_id"]]
    t = ITEM_SUPPLIERS.set_index("item_id").loc[keys["item_id"]]
    allows = suppliers.set_index("supplier_id")["allows_auto_order"].reindex(t["supplier_id"]).eq(True)
    return Terms(
        supplier_id=t["supplier_id"].to_numpy(np.int64),
        pack=t["pack_size"].to_numpy(np.int64),
        moq=t["moq"].to_numpy(np.int64),
        max_qty=t["max_order_qty"].to_numpy(np.int64),
        lead=t["lead_time_days"].to_numpy(np.int64),
        shelf_life=items["shelf_life_days"].to_numpy(np.int64),
        price=items["unit_price"].to_numpy(float),
        cost=items["unit_cost"].to_numpy(float),
        service_level=t["service_level"].to_numpy(float),
        min_order_value=t["min_order_value"].to_numpy(float),
        order_weekdays=tuple(t["order_weekdays"].astype(str)),
        category=tuple(items["category"].astype(str)),
        allows_auto=allows.to_numpy(bool),
    )


def _opportunities(keys: pd.DataFrame, terms: Terms, days: pd.DatetimeIndex, n_days: int,
                   holidays: frozenset[dt.date]) -> dict[int, dict[int, Opportunity]]:
    """Order opportunities per business day, from the production calendar (orders.calendar): like the nightly run
    for business date D, the policies decide after D's close for the orders placed on D + 1."""
    from replenish import clock

    day0 = days[0].date()
    out: dict[int, dict[int, Opportunity]] = {}
    cache: dict[tuple, Opportunity | None] = {}
    for t in range(n_days):
        d = clock.order_date_for(days[t].date())
        todays: dict[int, Opportunity] = {}
        for s in range(len(keys)):
            k = (terms.order_weekdays[s], int(terms.lead[s]), d)
            if k not in cache:
                store_id = cast("np.integer", keys.at[s, "store_id"])     # an integer id (stubs: any scalar)
                o = cal.opportunity(int(store_id), int(terms.supplier_id[s]), d,
                                    order_weekdays=k[0], lead_time_days=k[1], holidays=holidays)
                cache[k] = None if o is None else Opportunity((o.delivery_date - day0).days,
                                                              (o.next_delivery_date - day0).days)
            opp = cache[k]
            if opp is not None:
                todays[s] = opp
        out[t] = todays
    return out


def _initial_lots(retailer: Retailer, keys: pd.DataFrame, terms: Terms, start: pd.Timestamp) -> np.ndarray:
    """Stock on the morning of ``start`` by expiry: the retailer's stock after write-off on the eve, which under
    FIFO consists of the most recent receipts (allocated newest first). lots[:, k] expires at close of start + k."""
    life_max = int(terms.shelf_life.max())
    lots = np.zeros((len(keys), life_max), dtype=np.int64)
    eve = retailer.daily[retailer.daily["date"] == start - pd.Timedelta(days=1)]
    left = eve.set_index(["store_id", "item_id"])["closing_after"]
    gr = retailer.goods_receipts
    gr = gr[gr["received_date"] < start]
    for s, (store, item) in enumerate(zip(keys["store_id"], keys["item_id"], strict=True)):
        rest = int(left.get((store, item), 0))
        if rest <= 0:
            continue
        mine = gr[(gr["store_id"] == store) & (gr["item_id"] == item)].sort_values("received_date", ascending=False)
        for r in mine.itertuples():
            k = (r.received_date - start).days + int(terms.shelf_life[s]) - 1
            if k < 0 or rest <= 0:
                break
            take = min(rest, int(r.quantity))
            lots[s, k] += take
            rest -= take
    return lots


def build_world(panel: pd.DataFrame, start: dt.date, end: dt.date, *, seed: int, stores: list[int] | None = None,
                short_delivery_rate: float = SHORT_DELIVERY_RATE, retailer: Retailer | None = None) -> World:
    """The world for the window [start, end] (inclusive). ``retailer`` is generated from ``panel`` with ``seed``
    unless given; ``stores`` restricts the simulated series (the retailer is always built on the full panel)."""
    from ml.data import panel_to_frame

    start_ts, end_ts = pd.Timestamp(start), pd.Timestamp(end)
    first, last = panel["date"].min(), panel["date"].max()
    if end_ts < start_ts:
        raise ValueError(f"end: {end} is before start {start}")
    if start_ts - pd.Timedelta(days=HISTORY_WEEKS * 7 + 56) < first:
        raise ValueError(f"start: {start} leaves too little history (the panel starts {first.date()})")
    if end_ts > last:
        raise ValueError(f"end: {end} is after the last day of the demand panel ({last.date()})")
    if stores is not None:
        unknown = sorted(set(stores) - set(panel["store_id"].unique()))
        if unknown:
            raise ValueError(f"stores: unknown store ids {unknown}")
    retailer = retailer if retailer is not None else build_retailer(panel, seed=seed)
    if stores is not None:
        panel = panel[panel["store_id"].isin(stores)]
    keys = panel[["store_id", "item_id"]].drop_duplicates().sort_values(["store_id", "item_id"]).reset_index(drop=True)
    terms = _terms(keys, SUPPLIERS)
    n_days = (end_ts - start_ts).days + 1
    days = pd.date_range(start_ts, periods=n_days + PAD, freq="D")
    holidays = frozenset(pd.to_datetime(
        retailer.calendar.loc[retailer.calendar["is_public_holiday"], "calendar_date"]).dt.date)

    dem = panel.pivot_table(index="date", columns=["store_id", "item_id"], values="demand", aggfunc="first")
    cols = pd.MultiIndex.from_frame(keys)
    demand = np.rint(dem.reindex(index=days[:n_days], columns=cols).fillna(0.0).to_numpy()).astype(np.int64)

    # the retailer's past as the warehouse would hold it: sales, stock-out = closing stock (before write-off) <= 0
    daily = retailer.daily.merge(keys, on=["store_id", "item_id"])
    past = daily[daily["date"] < start_ts]
    hist_panel = panel[panel["date"] < start_ts].merge(
        past[["date", "store_id", "item_id", "sales", "closing"]], on=["date", "store_id", "item_id"], how="left")
    hist_panel["demand"] = hist_panel["sales"].astype(float)
    hist_panel["is_stockout"] = hist_panel["closing"] <= 0
    history = panel_to_frame(hist_panel)
    drivers = panel_to_frame(panel.assign(demand=np.nan)).drop(columns=["y", "is_stockout"])
    wf = retailer.weather_forecasts
    # every issue day up to the window's end: the weekly training reads the forecasts issued at its past origins
    wf = wf[(wf["issue_date"] <= end_ts) & wf["store_id"].isin(keys["store_id"].unique())].reset_index(drop=True)

    hs_wide = past.pivot_table(index="date", columns=["store_id", "item_id"], values="sales", aggfunc="first")
    hs = hs_wide.reindex(index=pd.date_range(start_ts - pd.Timedelta(days=HISTORY_WEEKS * 7),
                                             periods=HISTORY_WEEKS * 7),
                         columns=cols).fillna(0.0).to_numpy()

    po = retailer.purchase_orders.merge(keys.reset_index().rename(columns={"index": "s"}), on=["store_id", "item_id"])
    # placed before the first simulated decision: the nightly for the window's first day decides for the next day's
    # orders (replenish.clock), so the orders placed on the first day itself are the retailer's, already in the pipe
    before = po[po["order_date"] <= start_ts]
    history_orders = pd.DataFrame({"s": before["s"].to_numpy(), "due": (before["due_date"] - start_ts).dt.days,
                                   "qty": before["quantity"].to_numpy()})
    arrivals = np.zeros((n_days + PAD, len(keys)), dtype=np.int64)
    pipe = before[before["due_date"] >= start_ts]
    np.add.at(arrivals, ((pipe["due_date"] - start_ts).dt.days.to_numpy(), pipe["s"].to_numpy()),
              pipe["received_qty"].to_numpy(np.int64))
    history_orders = history_orders[history_orders["due"] < 0].reset_index(drop=True)

    rng = np.random.default_rng([seed, 7])
    masters = Masters(
        start=start_ts, end=end_ts, days=days, n_days=n_days, keys=keys, terms=terms, holidays=holidays,
        opportunities=_opportunities(keys, terms, days, n_days, holidays), history=history, drivers=drivers,
        weather_forecasts=wf, history_sales=hs, history_orders=history_orders,
        initial_lots=_initial_lots(retailer, keys, terms, start_ts), initial_arrivals=arrivals,
        short_u=rng.random((n_days + PAD, len(keys))), short_frac=rng.uniform(0.5, 0.9, (n_days + PAD, len(keys))),
        short_rate=float(short_delivery_rate),
    )
    return World(masters=masters, demand=demand, retailer_seed=seed)

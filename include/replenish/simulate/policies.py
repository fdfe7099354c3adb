"""Ordering policies compared by the simulator, and the day view each one is given.

A policy sees, on business date D (after the close), a :class:`DayView`: its own sales and stock-out flags up
to D, its stock after the write-off, its open orders and today's order opportunities, plus the static
:class:`~replenish.simulate.world.Masters` (masters, calendar, the retailer's past). The demand itself is
never in the view; only :class:`PerfectForesight` is constructed with it (it is the bound, not a policy).

* ``ours``: the production path: the registered model configuration (``ForecastConfig``) retrained weekly on
  the simulated calendar (Monday, on data through Sunday, like the ``forecast_training`` DAG) from the sales
  and stock-out flags this policy produced, then ``compute_proposals`` (quantile/newsvendor, MOQ -> pack -> cap).
* ``min_max``: an ERP reordering rule with static parameters from the 8 weeks of sales before the window.
* ``same_as_last_week``: forecast = sales on the same weekday last week, then the same proposal logic.
* ``perfect_foresight``: orders exactly the true demand of each delivery's shelf-life-limited coverage window.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ml.weather import MAX_ISSUE_AGE_DAYS, neutral_forecasts
from replenish.orders.proposals import compute_proposals
from replenish.simulate.world import HISTORY_WEEKS, Masters, Opportunity

if TYPE_CHECKING:
    from ml.config import ForecastConfig
    from ml.model import ForecastModel

log = logging.getLogger(__name__)
# risk columns (release.LineRisk): NaN for a policy without a demand distribution (not judged on risk)
LINE_COLUMNS = ["s", "delivery", "next_delivery", "qty", "position", "sell_p10", "sell_p50", "sell_p90", "shelf_p10",
                "top_up_units", "flagged", "fallback", "reasons"]
PREDICT_LOOKBACK_DAYS = 400  # history the forecast features read at an origin (year-ago + 365-day mean)


@dataclass(frozen=True)
class DayView:
    """What a policy knows on business day ``t`` after the close. Arrays are copies, cut at day t."""

    t: int
    date: pd.Timestamp
    sales: np.ndarray            # (t + 1, S) this policy's sales in the window so far
    stockout: np.ndarray         # (t + 1, S) closing stock before write-off <= 0 (the POS flag)
    on_hand: np.ndarray          # (S,) after tonight's write-off
    lots: np.ndarray             # (S, life) on hand by expiry; production has no lot data: only the bound uses it
    on_order: pd.DataFrame       # s, due, qty: open orders of this policy, due after day t
    opportunities: dict[int, Opportunity]   # series -> today's opportunity (deliveries not ordered yet)


def empty_lines() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if c == "reasons" else float) for c in LINE_COLUMNS})


def round_quantity(need: np.ndarray, moq: np.ndarray, pack: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """The proposal rounding order for rules outside compute_proposals: need -> MOQ -> pack (up) -> cap (packs)."""
    need = np.maximum(np.ceil(np.asarray(need, dtype=float) - 1e-9), 0).astype(np.int64)
    q = np.where(need > 0, np.maximum(need, moq), 0)
    q = -((-q) // pack) * pack
    return np.minimum(q, (cap // pack) * pack)


class Policy:
    name: str = "policy"
    adjustable: bool = True   # the simulated reviewer may adjust this policy's orders
    uses_forecast_interval: bool = False

    def propose(self, view: DayView) -> pd.DataFrame:  # pragma: no cover - interface
        raise NotImplementedError


class ProposalPolicy(Policy):
    """Policies that turn a forecast into orders through the production ``compute_proposals``."""

    def __init__(self, masters: Masters) -> None:
        self.m = masters

    def forecasts(self, view: DayView) -> pd.DataFrame:  # pragma: no cover - interface
        raise NotImplementedError

    def day_error_correlation(self) -> float | None:
        """Of the forecast errors of a window's days (None: the proposals' default)."""
        return None

    def lines(self, view: DayView) -> pd.DataFrame:
        m, tr = self.m, self.m.terms
        ss = np.array(sorted(view.opportunities), dtype=np.int64)
        dl = np.array([view.opportunities[s].delivery for s in ss], dtype=np.int64)
        nx = np.array([view.opportunities[s].next_delivery for s in ss], dtype=np.int64)
        on_order, expiring = open_before_delivery(view.on_order, ss, dl, tr.shelf_life)
        return pd.DataFrame({
            "store_id": m.keys["store_id"].to_numpy()[ss], "item_id": m.keys["item_id"].to_numpy()[ss],
            "supplier_id": tr.supplier_id[ss], "order_date": view.date, "delivery_date": m.days[dl],
            "next_delivery_date": m.days[nx], "as_of_date": view.date, "on_hand_qty": view.on_hand[ss].astype(float),
            "on_order_qty": on_order, "on_order_expiring_qty": expiring, "pack_size": tr.pack[ss], "moq": tr.moq[ss],
            "service_level": tr.service_level[ss], "shelf_life_days": tr.shelf_life[ss], "unit_price": tr.price[ss],
            "unit_cost": tr.cost[ss], "max_order_qty": tr.max_qty[ss].astype(float),
            "min_order_value": tr.min_order_value[ss], "_s": ss, "_delivery": dl, "_next": nx,
        })

    def propose(self, view: DayView) -> pd.DataFrame:
        if not view.opportunities:
            return empty_lines()
        lines = self.lines(view)
        fc = self.forecasts(view)
        res = compute_proposals(lines.drop(columns=["_s", "_delivery", "_next"]), fc, explain=False,
                                day_error_correlation=self.day_error_correlation())
        r = res.lines
        order_reasons = res.orders["reasons"].to_numpy()[r["order_idx"].to_numpy()]
        cap_reason = np.where(r["cap_below_moq"].to_numpy(), "cap_below_moq", "")
        fallback = self._fallback(fc, lines)
        judged = self.uses_forecast_interval
        risk = {c: r[c].to_numpy(float) if judged else np.nan for c in ("sell_p10", "sell_p50", "sell_p90",
                                                                         "shelf_p10")}
        return pd.DataFrame({
            "s": lines["_s"].to_numpy(), "delivery": lines["_delivery"].to_numpy(), "next_delivery": lines["_next"],
            "qty": r["proposed_qty"].to_numpy(np.int64),
            "position": r["position_milli"].to_numpy(float) / 1000, **risk,
            "top_up_units": (r["top_up_packs"] * r["pack_size"]).to_numpy(float),
            "flagged": r["forecast_flagged"].to_numpy(bool), "fallback": fallback,
            "reasons": [tuple(x) + ((c,) if c else ()) for x, c in zip(order_reasons, cap_reason, strict=True)],
        })

    @staticmethod
    def _fallback(fc: pd.DataFrame, lines: pd.DataFrame) -> np.ndarray:
        if "is_fallback" not in fc or not fc["is_fallback"].any():
            return np.zeros(len(lines), bool)
        fb = fc[fc["is_fallback"].astype(bool)][["store_id", "item_id"]].drop_duplicates()
        key = pd.MultiIndex.from_frame(lines[["store_id", "item_id"]])
        return key.isin(pd.MultiIndex.from_frame(fb))


class Ours(ProposalPolicy):
    """The production forecast + proposals, retrained weekly on what this policy sold."""

    name = "ours"
    uses_forecast_interval = True

    def __init__(self, masters: Masters, cfg: ForecastConfig | None = None,
                 on_train: Callable[[str], None] | None = None, calibrate: bool = True) -> None:
        from ml.config import ForecastConfig

        super().__init__(masters)
        self.cfg = cfg or ForecastConfig()
        self.model: ForecastModel | None = None
        self.train_end: pd.Timestamp | None = None
        self.fits: list[dict] = []
        self.on_train = on_train
        self.calibrate = calibrate
        h = masters.history
        self._hist_tail = h[h["date"] > masters.start - pd.Timedelta(days=PREDICT_LOOKBACK_DAYS)]
        w = masters.drivers
        self._window = w[(w["date"] >= masters.start) & (w["date"] <= masters.end)].reset_index(drop=True)
        self._row_s = pd.MultiIndex.from_frame(masters.keys).get_indexer(
            pd.MultiIndex.from_frame(self._window[["store_id", "item_id"]]))
        self._row_t = (self._window["date"] - masters.start).dt.days.to_numpy()
        # weather as production reads it (ml.weather): the forecasts issued at each origin, in training and prediction
        self._weather = neutral_forecasts(masters.weather_forecasts) if len(masters.weather_forecasts) else None

    def _observed(self, view: DayView, upto: pd.Timestamp) -> pd.DataFrame:
        """Window rows dated <= upto with y = this policy's sales and its stock-out flags (as production sees)."""
        keep = ((self._window["date"] <= upto).to_numpy()) & (self._row_t <= view.t)
        w = self._window[keep].copy()
        s, t = self._row_s[keep], self._row_t[keep]
        w["y"] = view.sales[t, s].astype(float)
        w["is_stockout"] = view.stockout[t, s]
        return w

    def _maybe_train(self, view: DayView) -> None:
        from replenish.simulate.training import fit_weekly

        # the forecast_training DAG runs Monday 04:00 on data through Sunday: business date D uses the model
        # trained on data through the last Sunday before D
        end = view.date - pd.Timedelta(days=view.date.dayofweek + 1)
        if self.model is not None and self.train_end == end:
            return
        frame = pd.concat([self.m.history, self._observed(view, end)], ignore_index=True)
        frame = frame[frame["date"] <= end]
        if self.on_train:
            self.on_train(f"training the forecast model on data through {end.date()}")
        wf = self._weather
        wf = None if wf is None else wf[wf["issue_date"] <= end]
        self.model = fit_weekly(self.cfg, frame, end, wf)
        if self.calibrate:
            # as forecast_training: a model on data through end - 56 days backtests the last 56 days, whose
            # residuals calibrate the intervals of the model the week runs on (ml.calibration)
            from ml.calibration import backtest_calibration, backtest_days

            days = backtest_days(frame, end)
            bt = fit_weekly(self.cfg, frame, end - pd.Timedelta(days=days), wf)
            self.model.calibration = backtest_calibration(bt, frame, end, wf, days)[1]
        self.train_end = end
        self.fits.append({"business_date": str(view.date.date()), "train_end": str(end.date()),
                          "rows": int(self.model.n_train_rows), "seconds": round(self.model.fit_seconds, 1)})
        log.info("simulated weekly training through %s: %d rows, %.1f s", end.date(), self.model.n_train_rows,
                 self.model.fit_seconds)

    def day_error_correlation(self) -> float | None:
        # as production (replenish.orders.inputs): measured by the backtest that calibrates the week's model
        cal = self.model.calibration if self.model is not None else None
        return (cal or {}).get("day_error_correlation")

    def forecasts(self, view: DayView) -> pd.DataFrame:
        self._maybe_train(view)
        past = pd.concat([self._hist_tail, self._observed(view, view.date)], ignore_index=True)
        past = past[past["date"] > view.date - pd.Timedelta(days=PREDICT_LOOKBACK_DAYS)]
        fut = self.m.known_drivers(view.t, self.cfg.max_horizon)
        fut = fut[fut["date"] > view.date].assign(y=np.nan, is_stockout=False)
        frame = pd.concat([past, fut[past.columns]], ignore_index=True)
        assert self.model is not None  # _maybe_train above returns only with a model set
        wf = self._weather
        if wf is not None:
            wf = wf[(wf["issue_date"] <= view.date)
                    & (wf["issue_date"] >= view.date - pd.Timedelta(days=MAX_ISSUE_AGE_DAYS))]
        P = self.model.predict(frame, [view.date], weather=wf)
        return P.assign(is_flagged=P["is_fallback"].astype(bool))


class SameAsLastWeek(ProposalPolicy):
    """Forecast for a day = the sales of the same weekday a week earlier (the last one known), p10 = p50 = p90."""

    name = "same_as_last_week"
    HORIZON = 14

    def forecasts(self, view: DayView) -> pd.DataFrame:
        m = self.m
        hist = m.history_sales                      # (56, S), the days just before the window
        sales = np.vstack([hist, view.sales])       # index i <-> day i - len(hist)
        off = len(hist)
        rows = []
        for h in range(1, self.HORIZON + 1):
            back = 7 * math.ceil(h / 7)             # the last same weekday at or before today
            src = view.t + h - back + off
            v = sales[src] if 0 <= src < len(sales) else np.zeros(m.n_series)
            rows.append(pd.DataFrame({"store_id": m.keys["store_id"], "item_id": m.keys["item_id"],
                                      "target_date": view.date + pd.Timedelta(days=h), "p10": v, "p50": v, "p90": v}))
        return pd.concat(rows, ignore_index=True)


class MinMax(Policy):
    """ERP reordering rule (s, S) per store x item, parameters fixed from the 8 weeks of sales before the window.

    Protection interval P = lead + R - 1 days (R = 7 / order days per week: from the order's placing to the
    delivery of the next one); max (order-up-to) = mean x P + z(service level) x std x sqrt(P); min
    (reorder point) = max - mean x R. When on hand + on order <= min, order max - position, then MOQ -> pack -> cap.
    Blind to weekdays, holidays and expiry: that is what a classic ERP rule is."""

    name = "min_max"

    def __init__(self, masters: Masters) -> None:
        tr = masters.terms
        sales = masters.history_sales
        mu, sd = sales.mean(axis=0), sales.std(axis=0)
        r = np.array([7.0 / len(w.split("|")) for w in tr.order_weekdays])
        p = tr.lead + r - 1.0
        z = np.array([NormalDist().inv_cdf(float(x)) for x in tr.service_level])
        self.max_level = mu * p + z * sd * np.sqrt(p)
        self.min_level = self.max_level - mu * r
        self.terms = tr
        self.weeks = HISTORY_WEEKS

    def propose(self, view: DayView) -> pd.DataFrame:
        if not view.opportunities:
            return empty_lines()
        tr = self.terms
        ss = np.array(sorted(view.opportunities), dtype=np.int64)
        dl = np.array([view.opportunities[s].delivery for s in ss], dtype=np.int64)
        # tonight's decision is placed tomorrow, so yesterday's order is still in flight: an in-flight order that is
        # gone (sold or expired) before this delivery is no cover for it (for daily fresh items it made the rule skip
        # every other day); anything else on order counts, as an ERP counts it
        on_order, expiring = open_before_delivery(view.on_order, ss, dl, tr.shelf_life)
        position = view.on_hand[ss] + on_order - expiring
        need = np.where(position <= self.min_level[ss], self.max_level[ss] - position, 0.0)
        qty = round_quantity(need, tr.moq[ss], tr.pack[ss], tr.max_qty[ss])
        return _plain_lines(ss, view.opportunities, qty)


class PerfectForesight(Policy):
    """The bound: knows the true demand and its exact stock by lot; orders exactly the demand of the delivery's
    window [delivery, min(next delivery, delivery + shelf life)) that older stock will not serve (no packs,
    no MOQ). Supplier short deliveries still hit it."""

    name = "perfect_foresight"
    adjustable = False

    def __init__(self, masters: Masters, demand: np.ndarray) -> None:
        self.m = masters
        self.demand = demand

    def _demand(self, d: int, s: int) -> int:
        return int(self.demand[d, s]) if 0 <= d < len(self.demand) else 0

    def propose(self, view: DayView) -> pd.DataFrame:
        if not view.opportunities:
            return empty_lines()
        tr = self.m.terms
        ss = np.array(sorted(view.opportunities), dtype=np.int64)
        qty = np.zeros(len(ss), dtype=np.int64)
        arrivals: dict[tuple[int, int], int] = {}
        for s, due, q in zip(view.on_order["s"].tolist(), view.on_order["due"].tolist(),
                             view.on_order["qty"].tolist(), strict=True):
            arrivals[(s, due)] = arrivals.get((s, due), 0) + q
        for i, s in enumerate(ss.tolist()):
            o = view.opportunities[s]
            lots = view.lots[s].copy()
            unmet = 0
            window_end = min(o.next_delivery, o.delivery + int(tr.shelf_life[s]))
            for d in range(view.t + 1, window_end):
                lots[int(tr.shelf_life[s]) - 1] += arrivals.get((s, d), 0)
                dem = self._demand(d, s)
                for k in range(len(lots)):       # FIFO
                    take = min(dem, lots[k])
                    lots[k] -= take
                    dem -= take
                if d >= o.delivery:
                    unmet += dem
                lots[:-1] = lots[1:].copy()
                lots[-1] = 0
            qty[i] = unmet
        # its demand distribution is the certain demand it orders for
        return _plain_lines(ss, view.opportunities, qty, certain=True)


def open_before_delivery(orders: pd.DataFrame, ss: np.ndarray, delivery: np.ndarray,
                         shelf_life: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per series ``ss[i]`` (sorted): units of the open orders due before ``delivery[i]``, and the part of them
    that will have expired by then (due date + shelf life <= delivery): ``on_order_qty``, ``on_order_expiring_qty``."""
    on_order, expiring = np.zeros(len(ss)), np.zeros(len(ss))
    if not len(orders) or not len(ss):
        return on_order, expiring
    os_ = orders["s"].to_numpy(np.int64)
    due, qty = orders["due"].to_numpy(np.int64), orders["qty"].to_numpy(np.int64)
    pos = np.minimum(np.searchsorted(ss, os_), len(ss) - 1)
    before = (ss[pos] == os_) & (due < delivery[pos])
    old = before & (delivery[pos] - due >= shelf_life[os_])
    on_order += np.bincount(pos[before], weights=qty[before], minlength=len(ss))
    expiring += np.bincount(pos[old], weights=qty[old], minlength=len(ss))
    return on_order, expiring


def _plain_lines(ss: np.ndarray, opps: dict[int, Opportunity], qty: np.ndarray,
                 certain: bool = False) -> pd.DataFrame:
    d = qty.astype(float) if certain else np.nan
    return pd.DataFrame({
        "s": ss, "delivery": [opps[s].delivery for s in ss], "next_delivery": [opps[s].next_delivery for s in ss],
        "qty": qty.astype(np.int64), "position": 0.0, "sell_p10": d, "sell_p50": d, "sell_p90": d, "shelf_p10": d,
        "top_up_units": 0.0, "flagged": False, "fallback": False, "reasons": [() for _ in ss],
    })

"""Interval calibration from rolling-backtest residuals, per series group (split-conformal quantile recalibration).

The quantile boosters' P10/P90 are only as calibrated as the panel they were trained on allows: too narrow on
few, short or driver-less series, too wide elsewhere. The backtest that precedes every training (ml.predict)
gives out-of-sample forecasts; per cell of series group x horizon band, the half-widths of the interval are
stretched (or shrunk) by the factor that makes P10 and P90 hit their level on those residuals:

    a_hi = the 0.9 quantile of (y - P50) / w_hi,  P90' = P50 + a_hi w_hi,   w_hi = max(P90 - P50, floor)
    a_lo = the 0.9 quantile of (P50 - y) / w_lo,  P10' = max(P50 - a_lo w_lo, 0)

P50 is untouched (WAPE and bias do not change). The floor gives zero-width intervals (intermittent series:
P10 = P50 = P90 = 0) a width to scale. Censoring: a stock-out day's sales are below its demand, so its residual
is taken on the demand the training target imputed there (ml.censoring; left out when none was imputed: too few
days that did not sell out). The days around public holidays are left out (see :func:`near_holiday`), and so are
the days a store was closed (:func:`store_closed`): forecast 0 and sold 0, always inside, they would narrow every
open day's interval. A cell with few rows is shrunk towards its parent (the group over all horizons, then all
rows), so the factors never rest on a handful of days.

Groups are measured at the origin from the history the model reads (never after it): volume = mean daily demand
over the last 28 observed days, intermittency = share of zero-sales days over the last 56 observed days, history
= observed days up to the origin. Thresholds are in units and days, the same for every panel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ml.features import Grid

LEVELS = (0.1, 0.9)
VOLUME_EDGES = (2.0, 20.0)          # units/day: low < 2 <= mid < 20 <= high
INTERMITTENT_ZERO_SHARE = 0.3       # more zero-sales days than this over the last 56: intermittent
SHORT_HISTORY_DAYS = 120            # fewer observed days than this up to the origin: short history
HORIZON_BANDS = (2, 7)              # h <= 2, 3..7, > 7 (the backtest's h <= 7 stands in for the longer horizons)
SHRINK_ROWS = 200                   # a cell's factor counts like this many rows of its parent's
CLOSED_MIN_UNITS = 10.0             # units/day a store sells on its open days, above which a day without a sale is
                                    # a closed store (Poisson: P(no sale) = e^-10 = 0.005 %), not a quiet day
CLOSED_LOOKBACK_DAYS = 56
GROUP_COLUMNS = ["volume", "intermittency", "history"]


def _floor(p50: np.ndarray) -> np.ndarray:
    return np.maximum(0.05 * p50, 0.1)


def series_groups(grid: Grid, rows: pd.DataFrame) -> pd.DataFrame:
    """volume / intermittency / history labels (and the numbers behind them) for each row's series at its
    origin. ``rows``: store_id, item_id, origin (the grid's series and dates)."""
    import pandas as pd

    y = grid.y
    obs = ~np.isnan(y)
    zero = obs & (np.nan_to_num(y) == 0)
    pad = np.zeros((y.shape[0], 1))
    cs = np.concatenate([pad, np.cumsum(np.nan_to_num(y), axis=1)], axis=1)
    cn = np.concatenate([pad, np.cumsum(obs, axis=1)], axis=1)
    cz = np.concatenate([pad, np.cumsum(zero, axis=1)], axis=1)
    keys = pd.MultiIndex.from_frame(grid.keys[["store_id", "item_id"]])
    s = keys.get_indexer(pd.MultiIndex.from_arrays([rows["store_id"].to_numpy(np.int64),
                                                    rows["item_id"].to_numpy(np.int64)]))
    o = ((pd.to_datetime(rows["origin"]) - grid.dates[0]).dt.days.to_numpy() + 1).astype(np.int64)
    o = np.clip(o, 0, y.shape[1])

    def window(c: np.ndarray, w: int) -> np.ndarray:
        return c[s, o] - c[s, np.maximum(o - w, 0)]

    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.where(window(cn, 28) > 0, window(cs, 28) / np.maximum(window(cn, 28), 1), 0.0)
        zero_share = np.where(window(cn, 56) > 0, window(cz, 56) / np.maximum(window(cn, 56), 1), 1.0)
    n_hist = cn[s, o]
    # each label one shared string: a backtest's 6 M rows as a string each held ~1 GB for three words
    return pd.DataFrame({
        "volume": _labels(("low", "mid", "high"), np.searchsorted(np.asarray(VOLUME_EDGES), level, side="right")),
        "intermittency": _labels(("smooth", "intermittent"), zero_share > INTERMITTENT_ZERO_SHARE),
        "history": _labels(("long", "short"), n_hist < SHORT_HISTORY_DAYS),
        "level": level, "zero_share": zero_share, "n_hist": n_hist,
    }, index=rows.index)


def _labels(names: tuple[str, ...], index: np.ndarray) -> np.ndarray:
    """``names[index]`` as an object array whose entries are the ``names`` themselves, not a copy per row."""
    return np.array(names, dtype=object)[np.asarray(index, dtype=np.intp)]


def near_holiday(grid: Grid) -> np.ndarray:
    """(series, dates): a public holiday on the day, the day before or the day after (Christmas Eve, New Year's
    Eve, bridge days). A few such days in a backtest window carry errors many times the ordinary ones and would set
    every group's width; they are left out of the residuals (their forecasts get the same factors). The holiday
    flags come from the drivers, or from the calendar (ml.holidays.public_holidays) when a panel has none."""
    hol = grid.drivers.get("is_holiday")
    if hol is None or np.isnan(hol).all():
        from ml.holidays import public_holidays

        days = set(public_holidays(range(grid.dates[0].year, grid.dates[-1].year + 1)))
        flags = np.array([d.date() in days for d in grid.dates])
        hol = np.broadcast_to(flags[None, :], (len(grid.keys), len(grid.dates)))
    h = np.nan_to_num(np.asarray(hol, dtype=float)) > 0
    out = h.copy()
    out[:, 1:] |= h[:, :-1]
    out[:, :-1] |= h[:, 1:]
    return out


def store_closed(grid: Grid) -> np.ndarray:
    """(series, dates): the store was closed that day. Its series were recorded and none sold a unit, while on the
    days it sold something in the CLOSED_LOOKBACK_DAYS before, it sold at least CLOSED_MIN_UNITS a day in all: a
    Sunday or a holiday the shop keeps shut (8 % of the bakery's store-days), a closure for works. A store of slow
    movers, whose quiet days are real zeros of demand, never qualifies. Read after the fact, to choose which days
    score an interval (the calibration's residuals, the validation table), never as a feature."""
    y = grid.y_raw
    uniq, row = np.unique(grid.keys["store_id"].to_numpy(), return_inverse=True)
    total = np.zeros((len(uniq), y.shape[1]))
    observed = np.zeros((len(uniq), y.shape[1]), dtype=bool)
    for k in range(len(uniq)):          # one store's rows at a time: no second copy of a chain's grid
        part = y[row == k]
        total[k] = np.nansum(part, axis=0)
        observed[k] = (~np.isnan(part)).any(axis=0)
    open_ = total > 0
    pad = np.zeros((total.shape[0], 1))
    cs = np.concatenate([pad, np.cumsum(np.where(open_, total, 0.0), axis=1)], axis=1)
    cn = np.concatenate([pad, np.cumsum(open_, axis=1)], axis=1)
    t = np.arange(total.shape[1])
    before = np.maximum(t - CLOSED_LOOKBACK_DAYS, 0)
    n_open = cn[:, t] - cn[:, before]
    usual = np.where(n_open > 0, (cs[:, t] - cs[:, before]) / np.maximum(n_open, 1), 0.0)
    closed = observed & ~open_ & (usual >= CLOSED_MIN_UNITS)
    return closed[row]


def _band(h: np.ndarray) -> np.ndarray:
    h = np.asarray(h)
    return np.where(h <= HORIZON_BANDS[0], "h1", np.where(h <= HORIZON_BANDS[1], "h2", "h3"))


def _cell(groups: pd.DataFrame) -> np.ndarray:
    """"volume/intermittency/history" of each row, built from the few combinations that occur (one string each)."""
    import pandas as pd

    codes, names = pd.MultiIndex.from_arrays([groups[c] for c in GROUP_COLUMNS]).factorize()
    if len(codes) and codes.min() < 0:      # a missing label would take another cell's factors unnoticed
        raise ValueError("a row without its series group (volume, intermittency, history)")
    return _labels(tuple("/".join(n) for n in names), codes)


def _scores(P: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    y, p10, p50, p90 = (P[c].to_numpy(float) for c in ("y", "p10", "p50", "p90"))
    fl = _floor(p50)
    return (p50 - y) / np.maximum(p50 - p10, fl), (y - p50) / np.maximum(p90 - p50, fl)


def _factor(scores: np.ndarray, level: float) -> float:
    """The split-conformal quantile: the ceil((n + 1) level)-th smallest score."""
    n = len(scores)
    k = min(int(np.ceil((n + 1) * level)), n)
    return float(np.partition(scores, k - 1)[k - 1])


def fit_calibration(P: pd.DataFrame, groups: pd.DataFrame) -> dict[str, Any]:
    """P: backtest forecasts (y, p10, p50, p90, horizon, optional stockout, near_holiday, closed and y_imputed: the
    demand of a stock-out day, ml.censoring); groups: :func:`series_groups` of its
    rows. Returns the JSON-able calibration: {"global", "cells": {cell: {"all", "h1", "h2", "h3"}}} of
    {"lo", "hi", "n"}, plus the thresholds it was fitted with."""
    keep = P["y"].notna().to_numpy()
    if "near_holiday" in P:
        keep &= ~P["near_holiday"].eq(True).to_numpy()
    if "closed" in P:
        keep &= ~P["closed"].eq(True).to_numpy()     # NaN (rows from where it is not known): not closed
    censored = P["stockout"].eq(True).to_numpy() if "stockout" in P else np.zeros(len(P), bool)
    sold_out = censored.copy()
    demand = P["y"].to_numpy(float)
    if "y_imputed" in P:
        # a stock-out day's sales are a lower bound: its demand is the draw the training target took above them
        # (ml.censoring). Dropping those days instead keeps the days whose demand stayed below the stock, so the
        # upper tail is measured without its high days: in the closed loop, where the fresh items sell out on 30 %
        # of days, that shrank P90 and the 1-day items sold out on 37 % of days for a 30 % target
        imputed = P["y_imputed"].to_numpy(float)
        ok = censored & np.isfinite(imputed) & (imputed > demand)
        demand = np.where(ok, imputed, demand)
        censored &= ~ok
    keep &= ~censored                  # sales of a stock-out day without an imputed demand: not a residual
    # the columns used, not the whole backtest twice over (at chain size 6 M rows of ~20 columns)
    corr_rows = P.loc[keep & ~sold_out, [c for c in _CORRELATION_COLUMNS if c in P]]
    P, groups = P.loc[keep, ["p10", "p50", "p90", "horizon"]].assign(y=demand[keep]), groups.loc[keep, GROUP_COLUMNS]
    lo, hi = _scores(P)
    cover = LEVELS[1]          # P90, and P10 mirrored (share below = share of lo scores above), hit their level

    def est(idx: np.ndarray, parent: dict | None) -> dict:
        n = int(idx.sum())
        if n == 0:
            assert parent is not None
            return dict(parent, n=0)
        a = {"lo": _factor(lo[idx], cover), "hi": _factor(hi[idx], cover)}
        if parent is not None:
            w = n / (n + SHRINK_ROWS)
            a = {k: w * a[k] + (1 - w) * parent[k] for k in a}
        return {k: max(v, 0.0) for k, v in a.items()} | {"n": n}

    glob = est(np.ones(len(P), dtype=bool), None) if len(P) else {"lo": 1.0, "hi": 1.0, "n": 0}
    cell, band = _cell(groups), _band(P["horizon"].to_numpy())
    cells: dict[str, dict] = {}
    for c in np.unique(cell):
        in_c = cell == c
        all_h = est(in_c, glob)
        cells[str(c)] = {"all": all_h, **{b: est(in_c & (band == b), all_h) for b in ("h1", "h2")}}
        cells[str(c)]["h3"] = cells[str(c)]["h2"]
    # errors of the same run's days, on the days the sales measured the demand (an imputed draw is independent)
    rho, pairs = day_error_correlation(corr_rows)
    return {"method": "split-conformal half-width scaling per group x horizon band", "global": glob,
            "cells": cells, "day_error_correlation": rho, "day_error_pairs": pairs,
            "volume_edges": list(VOLUME_EDGES), "intermittent_zero_share": INTERMITTENT_ZERO_SHARE,
            "short_history_days": SHORT_HISTORY_DAYS, "horizon_bands": list(HORIZON_BANDS),
            "shrink_rows": SHRINK_ROWS, "n_rows": int(len(P))}


_CORRELATION_COLUMNS = ("store_id", "item_id", "origin", "horizon", "y", "p10", "p50", "p90")


def day_error_correlation(P: pd.DataFrame, lags: tuple[int, ...] = (1, 2)) -> tuple[float | None, int]:
    """Correlation of the standardised errors (y - P50) / half-width of the same series and origin ``lags`` days
    apart, pooled (the residuals of one forecast run share weather, events and the series' level). The demand over
    a multi-day coverage window is judged with it (replenish.orders.quantiles.window_quantiles): 1 would make a
    window's P90 the sum of the daily P90s, 0 would treat the days as independent. None below 100 pairs."""
    import pandas as pd

    if not set(_CORRELATION_COLUMNS) <= set(P.columns) or len(P) == 0:
        return None, 0
    y, p10, p50, p90 = (P[c].to_numpy(float) for c in ("y", "p10", "p50", "p90"))
    e = (y - p50) / np.maximum((p90 - p10) / 2, _floor(p50))
    # one row per forecast run (series x origin), one column per horizon: numpy, as a pivot table of a chain's
    # backtest held several GB
    run, _ = pd.MultiIndex.from_arrays([P["store_id"], P["item_id"], P["origin"]]).factorize()
    horizons, col = np.unique(P["horizon"].to_numpy(np.int64), return_inverse=True)
    E = np.full((int(run.max()) + 1, len(horizons)), np.nan)
    E[run, col] = e
    a_all, b_all = [], []
    hs = [int(h) for h in horizons]
    for lag in lags:
        for h in hs:
            if h + lag in hs:
                a, b = E[:, hs.index(h)], E[:, hs.index(h + lag)]
                ok = np.isfinite(a) & np.isfinite(b)
                a_all.append(a[ok])
                b_all.append(b[ok])
    a, b = (np.concatenate(x) if x else np.empty(0) for x in (a_all, b_all))
    if len(a) < 100 or a.std() == 0 or b.std() == 0:
        return None, int(len(a))
    return float(np.clip(np.corrcoef(a, b)[0, 1], 0.0, 1.0)), int(len(a))


def apply_calibration(P: pd.DataFrame, groups: pd.DataFrame, calibration: dict[str, Any]) -> pd.DataFrame:
    """P with p10/p90 recalibrated (p50 unchanged; 0 <= p10 <= p50 <= p90)."""
    out = P.copy()
    p10, p50, p90 = (out[c].to_numpy(float) for c in ("p10", "p50", "p90"))
    cell, band = _cell(groups), _band(out["horizon"].to_numpy())
    a_lo, a_hi = np.empty(len(out)), np.empty(len(out))
    glob = calibration["global"]
    for c in np.unique(cell) if len(out) else []:
        for b in ("h1", "h2", "h3"):
            m = (cell == c) & (band == b)
            if m.any():
                f = calibration["cells"].get(str(c), {}).get(b, glob)
                a_lo[m], a_hi[m] = f["lo"], f["hi"]
    fl = _floor(p50)
    out["p10"] = np.clip(p50 - a_lo * np.maximum(p50 - p10, fl), 0.0, p50)
    out["p90"] = np.maximum(p50 + a_hi * np.maximum(p90 - p50, fl), p50)
    return out


# the backtest behind every training (ml.predict): origins every 2nd day over the last 56 days, h = 1..7. Chosen
# on the validation table (benchmarks.calibration): as good as 28 daily origins (the same prediction cost) on the
# synthetic and intermittent panels, and steadier where one month is unusual (a December before a January test:
# coverage 0.83-0.89 on 28 days, 0.79-0.80 on 56)
BACKTEST_DAYS = 56
BACKTEST_STRIDE = 2


FIRST_ORIGIN_DAYS = 56             # ml.model.ForecastModel.fit's first training origin: 56 days into the data


# The backtest model is trained on the data up to `days` before the final model's end. On a young warehouse that is
# a small part of the final model's training origins, and its errors then measure its own want of data, not the
# final model's: the journey test's 95 days of history left the backtest model two days of origins against the
# final model's 39, and its P90 was exceeded on 26 % of days, which would have doubled the final model's upper
# width. Below this share of the final model's training origins the calibration is stored but not applied.
MIN_BACKTEST_TRAIN_SHARE = 0.5


def why_not_applied(apply_option: bool, calibration: dict | None) -> str | None:
    """None when a model's stored calibration is applied to its forecasts, else why not: none_stored, option_off
    (ForecastConfig.apply_interval_calibration) or not_representative (MIN_BACKTEST_TRAIN_SHARE)."""
    if not calibration:
        return "none_stored"
    if not apply_option:
        return "option_off"
    return None if calibration.get("representative", True) else "not_representative"


def backtest_train_share(frame: pd.DataFrame, end, days: int) -> float:
    """The backtest model's training origins as a share of the final model's (both start FIRST_ORIGIN_DAYS into
    the data)."""
    import pandas as pd

    span = (pd.Timestamp(end) - pd.to_datetime(frame.loc[frame["y"].notna(), "date"]).min()).days
    final = span - FIRST_ORIGIN_DAYS
    return float(max(final - days, 0) / final) if final > 0 else 0.0


def backtest_days(frame: pd.DataFrame, end) -> int:
    """BACKTEST_DAYS, or fewer when the history is short (a new warehouse): the backtest model needs training
    origins before its own end (FIRST_ORIGIN_DAYS into the data, plus a couple of days)."""
    import pandas as pd

    span = (pd.Timestamp(end) - pd.to_datetime(frame.loc[frame["y"].notna(), "date"]).min()).days
    return int(max(min(BACKTEST_DAYS, span - FIRST_ORIGIN_DAYS - 2), 2))


def backtest_calibration(model, frame: pd.DataFrame, end, weather: pd.DataFrame | None = None,
                         days: int = BACKTEST_DAYS,
                         stride: int = BACKTEST_STRIDE) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``model`` (trained on data <= end - days) forecasts every ``stride``-th origin back from end - 1 to
    end - days + 1, h = 1..7, targets <= end; returns those forecasts (with stockout and the series groups) and
    the calibration fitted on them."""
    import pandas as pd

    from ml.features import make_grid

    end = pd.Timestamp(end)
    after = pd.to_datetime(frame["date"]) > end
    if after.any():                     # a copy only when there is something to drop (at chain size it is GBs)
        frame = frame[~after.to_numpy()]
    del after
    origins = pd.date_range(end - pd.Timedelta(days=1), end - pd.Timedelta(days=days - 1), freq=f"-{stride}D")
    P = model.predict(frame, origins, range(1, 8), weather=weather)
    P = P[P["target_date"] <= end].reset_index(drop=True)
    grid = make_grid(frame, model.cfg, weather)
    s = pd.MultiIndex.from_frame(grid.keys[["store_id", "item_id"]]).get_indexer(
        pd.MultiIndex.from_frame(P[["store_id", "item_id"]].astype("int64")))
    t = (pd.to_datetime(P["target_date"]) - grid.dates[0]).dt.days.to_numpy()
    P["stockout"] = grid.stockout[s, t]
    if grid.y_fit is not None:
        P["y_imputed"] = np.where(P["stockout"], grid.y_fit[s, t], np.nan)
    P["near_holiday"] = near_holiday(grid)[s, t] if len(P) else False
    P["closed"] = store_closed(grid)[s, t] if len(P) else False
    groups = series_groups(grid, P)
    del grid                            # a chain's grid is over 1 GB: not held while the residuals are scored
    P = P.join(groups[GROUP_COLUMNS])
    calibration = fit_calibration(P, groups)
    share = backtest_train_share(frame, end, days)
    calibration["backtest_train_share"] = round(share, 3)
    calibration["representative"] = share >= MIN_BACKTEST_TRAIN_SHARE
    return P, calibration


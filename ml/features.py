"""Direct multi-horizon features for (origin o, horizon h) -> target date t = o + h.

Target-derived features read y only through :func:`y_at`, which asserts that every source date is <= o
(the leakage guard). Known-in-advance drivers (calendar, holidays, planned promotions, prices) are read at the
target date t. Weather is not known in advance: ``cfg.weather_drivers`` are the forecast issued at o for t
(ml.weather), never the weather observed on t.
:func:`check_no_lookahead` is an end-to-end guard: rebuilding with every y after the origin scrambled must
give identical features.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ml.censoring import impute_stockouts
from ml.config import ForecastConfig
from ml.holidays import keys_and_lags
from ml.weather import MAX_ISSUE_AGE_DAYS, forecast_arrays, issued_at_origin

if TYPE_CHECKING:
    import pandas as pd


class LeakageError(AssertionError):
    """A feature read data dated after the forecast origin."""


@dataclass
class Grid:
    """Series x dates arrays on a full daily grid (dates extend max_horizon past the last row)."""

    keys: pd.DataFrame                  # store_id, item_id per series row
    dates: pd.DatetimeIndex
    y: np.ndarray                       # observed y, NaN if missing; stock-out days imputed (or NaN if masked)
    y_raw: np.ndarray                   # observed y as recorded (sales), NaN if missing
    stockout: np.ndarray
    # the training target where stock-out days are imputed (ml.censoring): a draw above the sales; None: y_raw
    y_fit: np.ndarray | None = None
    drivers: dict[str, np.ndarray] = field(default_factory=dict)
    # weather forecasts per store (ml.weather.forecast_arrays): [store row, issue date, lead - 1]
    weather_row: np.ndarray | None = None
    weather: dict[str, np.ndarray] = field(default_factory=dict)

    def date_index(self, d) -> int:
        import pandas as pd

        return int((pd.Timestamp(d) - self.dates[0]).days)


def make_grid(frame: pd.DataFrame, cfg: ForecastConfig, weather: pd.DataFrame | None = None) -> Grid:
    """``weather``: forecasts as issued (ml.weather); the source of ``cfg.weather_drivers`` (missing without)."""
    import pandas as pd

    # no copy of the frame (at M5 size it is GBs); series index via one sort of int64 keys when ids allow it
    f = frame
    date = pd.to_datetime(f["date"]).astype("datetime64[ns]")
    dates = pd.date_range(date.min(), date.max() + pd.Timedelta(days=cfg.max_horizon), freq="D")
    st, it = f["store_id"].to_numpy(np.int64), f["item_id"].to_numpy(np.int64)
    if len(st) and st.min() >= 0 and it.min() >= 0 and st.max() < 2**31 and it.max() < 2**31:
        uniq, sidx = np.unique((st << 31) | it, return_inverse=True)
        keys = pd.DataFrame({"store_id": uniq >> 31, "item_id": uniq & (2**31 - 1)})
    else:
        keys = f[["store_id", "item_id"]].drop_duplicates().sort_values(["store_id", "item_id"])
        keys = keys.reset_index(drop=True)
        sidx = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(f[["store_id", "item_id"]]))
    didx = ((date - dates[0]).dt.days).to_numpy()
    shape = (len(keys), len(dates))

    def fill(col, default=np.nan, dtype=np.float64):
        a = np.full(shape, default, dtype=dtype)
        if col in f:
            a[sidx, didx] = f[col].to_numpy(dtype=dtype)
        return a

    y_raw = fill("y")
    so = fill("is_stockout", 0.0, np.float32)
    so = np.nan_to_num(so) > 0
    y_fit = None
    if cfg.mask_stockouts and cfg.impute_stockouts:
        y, y_fit = impute_stockouts(y_raw, so, seed=cfg.lgbm.seed)
    else:
        y = y_raw.copy()
        if cfg.mask_stockouts:
            y[so] = np.nan
    # float32: drivers are ~1/3 of the grid; weather drivers come from the forecasts, the observed are not kept
    drivers = {c: fill(c, dtype=np.float32) for c in cfg.drivers if c not in cfg.weather_drivers}
    # leads beyond the horizon too: they stand in for a missing delivery (ml.weather.issued_at_origin)
    row, wx = forecast_arrays(weather, keys["store_id"].to_numpy(), dates, cfg.max_horizon + MAX_ISSUE_AGE_DAYS)
    return Grid(keys=keys, dates=dates, y=y, y_raw=y_raw, stockout=so, y_fit=y_fit, drivers=drivers,
                weather_row=row, weather={c: wx[c] for c in cfg.weather_drivers})


def y_at(a: np.ndarray, src: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """a[:, src] with NaN outside the grid. The guard: every source index must be <= its origin index."""
    if np.any(src > origin):
        raise LeakageError(f"feature reads data {int(np.max(src - origin))} day(s) after the origin")
    out = np.full((a.shape[0], len(src)), np.nan)
    ok = (src >= 0) & (src < a.shape[1])
    out[:, ok] = a[:, src[ok]]
    return out


def _at_target(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = np.full((a.shape[0], len(t)), np.nan)
    ok = (t >= 0) & (t < a.shape[1])
    out[:, ok] = a[:, t[ok]]
    return out


def _nanmean(a: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN, NaN where all are NaN; without np.nanmean's warning (silencing it with
    warnings.catch_warnings is not thread-safe, and the simulator fits in threads)."""
    n = (~np.isnan(a)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.nansum(a, axis=0) / n, np.nan)


def _window_mean(cs: np.ndarray, cn: np.ndarray, o: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of observed y over (o-w, o], from cumulative sums (cs[:, i] = sum of y[:, :i])."""
    hi = y_at(cs, o + 1, o + 1)         # cumulative sums shifted by one: index o+1 covers dates <= o
    lo = np.clip(o + 1 - w, 0, None)
    s = hi - cs[:, lo]
    n = y_at(cn, o + 1, o + 1) - cn[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan), n


ExtraFeature = Callable[[Grid, np.ndarray, int], tuple[str, np.ndarray]]


def build_features(grid: Grid, origins: Iterable, cfg: ForecastConfig, horizons: Sequence[int] | None = None,
                   extra: Sequence[ExtraFeature] = ()) -> pd.DataFrame:
    """One row per (series, origin, horizon). Columns: keys, origin, target_date, horizon, scale, y (target, raw
    sales at t if known), stockout (at t), features (see :func:`feature_columns`). y-like features are scaled."""
    import pandas as pd

    horizons = list(horizons or cfg.horizons)
    o = np.array(sorted({grid.date_index(d) for d in origins}), dtype=int)
    o = o[(o >= 0) & (o < len(grid.dates))]
    y = grid.y
    obs = ~np.isnan(y)
    cs = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(np.nan_to_num(y), axis=1)], axis=1)
    cn = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(obs, axis=1)], axis=1)
    with np.errstate(over="ignore"):  # absurd sales square past float32 (see std below)
        cs2 = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(np.nan_to_num(y) ** 2, axis=1)], axis=1)
    # the last observed value at or before o (forward-filled)
    idx = np.where(obs, np.arange(y.shape[1])[None, :], -1)
    np.maximum.accumulate(idx, axis=1, out=idx)
    last_obs = np.take_along_axis(np.nan_to_num(y), np.maximum(idx, 0), axis=1)
    last_obs[idx < 0] = np.nan

    # features at the origin (do not depend on h)
    base: dict[str, np.ndarray] = {}
    scale, n_scale = _window_mean(cs, cn, o, cfg.scale_window)
    long_mean, _ = _window_mean(cs, cn, o, 365)
    scale = np.where(np.isnan(scale) | (scale <= 0), long_mean, scale)
    scale = np.where(np.isnan(scale) | (scale <= 0), 1.0, scale)
    if cfg.last_value:
        base["last"] = y_at(last_obs, o, o) / scale
    for w in cfg.rolling_windows:
        base[f"mean_{w}"] = _window_mean(cs, cn, o, w)[0] / scale
    w = cfg.rolling_std_window
    m, n = _window_mean(cs, cn, o, w)
    s2 = y_at(cs2, o + 1, o + 1) - cs2[:, np.clip(o + 1 - w, 0, None)]
    # over: absurd sales (a corrupted export, which the quality gate blocks) square past float32's range; the
    # feature is then inf or NaN for that series, as LightGBM takes it, instead of a warning on every such run
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        base[f"std_{w}"] = np.sqrt(np.maximum(s2 / np.maximum(n, 1) - m**2, 0)) / scale
    base["n_obs_56"] = _window_mean(cs, cn, o, 56)[1]
    base["log_scale"] = np.log1p(scale)
    mean_7 = _window_mean(cs, cn, o, 7)[0]
    if cfg.weekday_profile_weeks:
        # cumulative sums over every 7th day: ws[:, i] = sum of y[:, i], y[:, i-7], y[:, i-14], ...
        ws, wn = np.nan_to_num(y), obs.astype(np.float64)
        for d in range(7):
            np.cumsum(ws[:, d::7], axis=1, out=ws[:, d::7])
            np.cumsum(wn[:, d::7], axis=1, out=wn[:, d::7])

    out = []
    S = len(grid.keys)
    for h in horizons:
        t = o + h
        feats = dict(base)
        lag0 = 7 * int(np.ceil(h / 7))          # the last same weekday as t at or before o
        sw = np.stack([y_at(y, t - lag0 - 7 * j, o) for j in range(max(cfg.same_weekday_counts))])
        for k in cfg.same_weekday_counts:
            feats[f"sw_mean_{k}"] = (sw[0] if k == 1 else _nanmean(sw[:k])) / scale
        for wk in cfg.weekday_profile_weeks:
            # mean of the wk same weekdays t - lag0 - 7j (j < wk), all in the 7wk days ending at o
            e, b = t - lag0, t - lag0 - 7 * wk
            s_wk = y_at(ws, e, o) - np.where(b >= 0, y_at(ws, np.maximum(b, 0), o), 0.0)
            n_wk = y_at(wn, e, o) - np.where(b >= 0, y_at(wn, np.maximum(b, 0), o), 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(n_wk > 0, s_wk / np.maximum(n_wk, 1), np.nan) / _window_mean(cs, cn, o, 7 * wk)[0]
            feats[f"dow_share_{wk}"] = share
            feats[f"dow_level_{wk}"] = share * mean_7 / scale
        if cfg.year_ago_window:
            half = cfg.year_ago_window // 2
            ya = np.stack([y_at(y, t - 364 + d, o) for d in range(-half, half + 1)])
            feats["year_ago"] = _nanmean(ya) / scale
        for c in cfg.drivers:
            if c in cfg.weather_drivers:
                assert grid.weather_row is not None  # make_grid always sets it
                feats[c] = issued_at_origin(grid.weather[c], grid.weather_row, o, h)
            else:
                feats[c] = _at_target(grid.drivers[c], t)
        hol = grid.drivers.get("is_holiday")
        if cfg.holiday_neighbours:
            for name, d in (("holiday_prev", -1), ("holiday_next", 1)):
                feats[name] = _at_target(hol, t + d) if hol is not None else np.full((S, len(o)), np.nan)
        td = pd.DatetimeIndex(grid.dates[0] + pd.to_timedelta(t, unit="D"))
        if cfg.holiday_identity:
            feats.update(_holiday_identity(grid, cs, cn, o, t, scale, td, hol, cfg.holiday_years))
        cal = {"dow": td.dayofweek, "dom": td.day, "month": td.month, "doy": td.dayofyear,
               "week": td.isocalendar().week.to_numpy().astype(int)}
        for c in cfg.calendar:
            feats[c] = np.broadcast_to(np.asarray(cal[c], dtype=float)[None, :], (S, len(o)))
        for fn in extra:
            name, val = fn(grid, o, h)
            feats[name] = val
        # float32 features: half the memory of the training matrix, ample precision for tree splits
        df = pd.DataFrame({k: np.asarray(v, dtype=np.float32).ravel() for k, v in feats.items()})
        df.insert(0, "horizon", h)
        df.insert(0, "target_date", np.tile(td.to_numpy(), S))
        df.insert(0, "origin", np.tile(grid.dates[o].to_numpy(), S))
        df.insert(0, "item_id", np.repeat(grid.keys["item_id"].to_numpy(), len(o)))
        df.insert(0, "store_id", np.repeat(grid.keys["store_id"].to_numpy(), len(o)))
        df["scale"] = scale.ravel()
        df["y"] = _at_target(grid.y_raw, t).ravel()
        if grid.y_fit is not None:
            df["y_fit"] = _at_target(grid.y_fit, t).ravel()
        df["stockout"] = _at_target(grid.stockout.astype(float), t).ravel() > 0
        out.append(df)
    return pd.concat(out, ignore_index=True)


def _holiday_identity(grid: Grid, cs: np.ndarray, cn: np.ndarray, o: np.ndarray, t: np.ndarray, scale: np.ndarray,
                      td: pd.DatetimeIndex, hol: np.ndarray | None, years: int) -> dict[str, np.ndarray]:
    """``holiday_key``: which holiday the target date is (missing on ordinary days). ``holiday_last``: the series'
    demand on the same holiday in each of the last ``years`` years, relative to its mean over the 28 days before
    that day (mean over the years). ``holiday_sunday``: the series' recent Sunday level. Only on holidays."""
    shape = (len(grid.keys), len(o))
    is_hol = _at_target(hol, t) > 0 if hol is not None else np.zeros(shape, dtype=bool)
    keys, lags = keys_and_lags(td, years)
    ratios = []
    for lag in lags:
        p = t - lag
        before, _ = _window_mean(cs, cn, p - 1, 28)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios.append(np.where(before > 0, y_at(grid.y, p, o) / before, np.nan))
    # most open holidays trade like a Sunday: the series' mean over its last 8 Sundays <= o, relative to its scale
    sun = o - (grid.dates[o].dayofweek.to_numpy() - 6) % 7
    sunday = _nanmean(np.stack([y_at(grid.y, sun - 7 * j, o) for j in range(8)]))
    return {"holiday_key": np.where(is_hol, keys[None, :], np.nan),
            "holiday_last": np.where(is_hol, _nanmean(np.stack(ratios)) if ratios else np.nan, np.nan),
            "holiday_sunday": np.where(is_hol, sunday / scale, np.nan)}


def feature_columns(cfg: ForecastConfig) -> list[str]:
    cols = ["horizon"]
    if cfg.last_value:
        cols.append("last")
    cols += [f"mean_{w}" for w in cfg.rolling_windows] + [f"std_{cfg.rolling_std_window}", "n_obs_56", "log_scale"]
    cols += [f"sw_mean_{k}" for k in cfg.same_weekday_counts]
    cols += [f"dow_{kind}_{wk}" for wk in cfg.weekday_profile_weeks for kind in ("share", "level")]
    if cfg.year_ago_window:
        cols.append("year_ago")
    cols += list(cfg.drivers) + (["holiday_prev", "holiday_next"] if cfg.holiday_neighbours else [])
    cols += (["holiday_key", "holiday_last", "holiday_sunday"] if cfg.holiday_identity else [])
    return cols + list(cfg.calendar) + list(cfg.categoricals)


def check_no_lookahead(frame: pd.DataFrame, origin, cfg: ForecastConfig, extra: Sequence[ExtraFeature] = (),
                       seed: int = 0, weather: pd.DataFrame | None = None) -> None:
    """End-to-end guard: scramble every y, stock-out flag and observed weather dated after ``origin`` and every
    weather forecast issued after it; the features built at ``origin`` must not change. Raises LeakageError
    otherwise."""
    import pandas as pd

    from ml.weather import WEATHER_COLUMNS, neutral_forecasts

    rng = np.random.default_rng(seed)
    after = pd.to_datetime(frame["date"]) > pd.Timestamp(origin)
    scrambled = frame.copy()
    scrambled.loc[after, "y"] = rng.uniform(0, 1e6, int(after.sum()))
    scrambled.loc[after, "is_stockout"] = rng.uniform(size=int(after.sum())) < 0.5
    for c in WEATHER_COLUMNS:
        if c in scrambled:
            scrambled.loc[after, c] = rng.uniform(-50, 50, int(after.sum()))
    wf, wf_s = neutral_forecasts(weather), None
    if wf is not None:
        wf_s = wf.copy()
        late = wf_s["issue_date"] > pd.Timestamp(origin)
        for c in WEATHER_COLUMNS:
            wf_s.loc[late, c] = rng.uniform(-50, 50, int(late.sum()))
    cols = [c for c in feature_columns(cfg) if c not in cfg.categoricals] + ["scale"]
    a = build_features(make_grid(frame, cfg, wf), [origin], cfg, extra=extra)
    b = build_features(make_grid(scrambled, cfg, wf_s), [origin], cfg, extra=extra)
    extra_cols = [c for c in a.columns if c not in cols and c not in
                  ("store_id", "item_id", "origin", "target_date", "y", "y_fit", "stockout")]
    for c in cols + extra_cols:
        if not np.allclose(a[c].to_numpy(float), b[c].to_numpy(float), equal_nan=True):
            raise LeakageError(f"feature {c!r} changes when data after the origin {origin} changes")

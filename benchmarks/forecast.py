"""Forecast bench per docs/benchmark-protocol.md (see ``run_forecast_bench``).

Protocol, identical for every learned method: fitted ONCE on data dated <= 2018-12-31, then for every origin o in
2019-01-01..2019-04-29 it forecasts o+1..o+7 from the history dated <= o (parameters frozen, state/features
updated with the new actuals). Baselines are recomputed per origin. Rows whose target date is after 2019-04-30 are
not scored, so every method is scored on the same (store, item, target date, horizon) rows.
- statsforecast: AutoETS(season_length=7) fitted per series once; per origin ``model.forward`` re-runs the
  fixed-parameter filter on the history <= o (80% interval -> P10/P90). Refitting per origin would cost
  ~119 x the fit time; frozen parameters keep it bounded and match the protocol of the others.
- mlforecast: the protocol's configuration: LightGBM (default L2 LGBMRegressor), lags 1, 7, 14, 28, rolling means
  7/28 of lags 1 and 7, date features (day of week, month, day of year), the known-ahead drivers (holidays, school
  holidays, promotions); recursive over the 7 days; P10/P90 = P50 -/+ its conformal width per series (the 80 %
  quantile of |y - P50| over 8 cross-validation windows of 7 days before the training end). Per origin
  ``predict(h=7, new_df=history <= o, X_df=the drivers of o+1..o+7)``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ml.backtest import metrics, metrics_by

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

TRAIN_END = "2018-12-31"
TEST_START, TEST_END = "2019-01-01", "2019-04-30"
HORIZONS = list(range(1, 8))
WEATHER_SEED = 18


def _ours(frame, origins, cfg=None, weather=None, calibrate=True):
    from ml.config import ForecastConfig
    from ml.model import ForecastModel
    from ml.predict import fit_calibrated

    cfg = cfg or ForecastConfig(origin_stride=6, horizons=HORIZONS)
    if calibrate:   # the production recipe: the backtest before TRAIN_END calibrates the intervals (ml.calibration)
        m = fit_calibrated(cfg, frame, TRAIN_END, weather)
    else:
        m = ForecastModel(cfg).fit(frame, end_date=TRAIN_END, weather=weather)
    return m.predict(frame, origins, HORIZONS, weather=weather)


def _statsforecast(frame, origins):
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    f = frame[frame["y"].notna()].copy()
    f["unique_id"] = f["store_id"].astype(str) + "_" + f["item_id"].astype(str)
    train = f[f["date"] <= pd.Timestamp(TRAIN_END)].rename(columns={"date": "ds"})[["unique_id", "ds", "y"]]
    sf = StatsForecast(models=[AutoETS(season_length=7)], freq="D", n_jobs=2)
    sf.fit(train)
    uids = list(sf.uids) if hasattr(sf, "uids") else sorted(train["unique_id"].unique())
    out = []
    for i, uid in enumerate(uids):
        s = f[f["unique_id"] == uid].sort_values("date")
        model = sf.fitted_[i, 0]
        ys, ds = s["y"].to_numpy(float), s["date"].to_numpy()
        sid, iid = int(s["store_id"].iloc[0]), int(s["item_id"].iloc[0])
        for o in origins:
            n = int(np.searchsorted(ds, np.datetime64(o), side="right"))
            r = model.forward(y=ys[:n], h=len(HORIZONS), level=[80])
            td = pd.Timestamp(o) + pd.to_timedelta(HORIZONS, unit="D")
            out.append(pd.DataFrame({"store_id": sid, "item_id": iid, "origin": pd.Timestamp(o), "target_date": td,
                                     "horizon": HORIZONS, "p50": r["mean"], "p10": r["lo-80"], "p90": r["hi-80"]}))
    return pd.concat(out, ignore_index=True)


# mlforecast as the protocol configures it (../shared/BENCHMARK.md): lags 1, 7, 14, 28 with rolling means, date
# features and the known-ahead drivers (calendar and planned promotions; no weather: none is known at the origin
# but a forecast, which this peer is not given)
ML_LAGS = [1, 7, 14, 28]
ML_KNOWN_AHEAD = ["is_holiday", "is_holiday_next2days", "is_school_holiday", "promotion", "promotion_lastweek"]
ML_DATE_FEATURES = ["dayofweek", "month", "dayofyear"]
ML_CONFORMAL_WINDOWS = 8


def _mlforecast(frame, origins):
    import lightgbm as lgb
    import pandas as pd
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    f = frame[frame["y"].notna()].copy()
    f["unique_id"] = f["store_id"].astype(str) + "_" + f["item_id"].astype(str)
    exog = [c for c in ML_KNOWN_AHEAD if c in f and f[c].notna().any()]
    f[exog] = f[exog].fillna(0.0)
    f = f.rename(columns={"date": "ds"})[["unique_id", "ds", "y", "store_id", "item_id", *exog]]
    keys = f[["unique_id", "store_id", "item_id"]].drop_duplicates()
    # the drivers of every date (the test window's too: they are planned), for the days each origin forecasts
    future = frame.assign(unique_id=frame["store_id"].astype(str) + "_" + frame["item_id"].astype(str))
    future = future.rename(columns={"date": "ds"})[["unique_id", "ds", *exog]].fillna(0.0)
    fc = MLForecast(models={"lgbm": lgb.LGBMRegressor(n_jobs=2, verbose=-1)}, freq="D", lags=ML_LAGS,
                    lag_transforms={1: [RollingMean(window_size=7), RollingMean(window_size=28)],
                                    7: [RollingMean(window_size=7), RollingMean(window_size=28)]},
                    date_features=ML_DATE_FEATURES)
    train = f[f["ds"] <= pd.Timestamp(TRAIN_END)]      # the columns in new_df's order: mlforecast reads them by place
    # P10/P90: mlforecast's conformal interval, per series from its own cross-validation before the training end
    # (8 windows of 7 days; the 80 % quantile of |y - P50|). Its built-in one (predict(level=...)) cannot be asked
    # with new_df and future drivers together (mlforecast 1.1: its frozen backtest drops X_df)
    cv = fc.cross_validation(train, n_windows=ML_CONFORMAL_WINDOWS, h=len(HORIZONS),
                             static_features=["store_id", "item_id"], refit=False)
    width = (cv["y"] - cv["lgbm"]).abs().groupby(cv["unique_id"]).quantile(0.8).rename("width").reset_index()
    fc.fit(train, static_features=["store_id", "item_id"])
    out = []
    for o in origins:
        o = pd.Timestamp(o)
        hist = f[(f["ds"] <= o) & (f["ds"] > o - pd.Timedelta(days=60))]
        ahead = future[(future["ds"] > o) & (future["ds"] <= o + pd.Timedelta(days=len(HORIZONS)))]
        p = fc.predict(h=len(HORIZONS), new_df=hist, X_df=ahead if exog else None)
        p["origin"] = o
        out.append(p)
    p = pd.concat(out, ignore_index=True).merge(keys, on="unique_id")
    p["horizon"] = (p["ds"] - p["origin"]).dt.days
    p = p.rename(columns={"ds": "target_date", "lgbm": "p50"}).merge(width, on="unique_id", how="left")
    p["p10"] = np.maximum(p["p50"] - p["width"], 0.0)
    p["p90"] = p["p50"] + p["width"]
    return p[["store_id", "item_id", "origin", "target_date", "horizon", "p10", "p50", "p90"]]


def run_forecast_bench(panel: pd.DataFrame, methods: list[str] | None = None, ours_cfg=None) -> dict:
    """Run every method on the same rows; returns {"methods": {name: {...metrics, seconds, by_horizon}},
    "ratios": {peer: ours_wape / peer_wape}, "protocol": str, "n_rows": int}."""
    import pandas as pd

    from ml.baselines import mean_last4_same_weekday, seasonal_naive
    from ml.data import panel_to_frame
    from replenish.data.weather import derive_weather_forecasts

    frame = panel_to_frame(panel) if "demand" in panel.columns else panel
    # the panel has observed weather only: ours gets forecasts issued at each origin, derived with the exports'
    # error model (seeded), in training and prediction alike; no method sees the target day's observed weather
    weather = derive_weather_forecasts(frame, seed=WEATHER_SEED)
    origins = pd.date_range(TEST_START, TEST_END, freq="D")[:-1]
    last = pd.Timestamp(TEST_END)
    truth = frame[["store_id", "item_id", "date", "y"]].rename(columns={"date": "target_date"})
    runners = {
        "seasonal_naive": lambda: seasonal_naive(frame, origins, HORIZONS),
        "mean_last4_same_weekday": lambda: mean_last4_same_weekday(frame, origins, HORIZONS),
        "statsforecast_autoets": lambda: _statsforecast(frame, origins),
        "mlforecast_lgbm": lambda: _mlforecast(frame, origins),
        "ours": lambda: _ours(frame, origins, ours_cfg, weather),
    }
    methods = methods or list(runners)
    res: dict = {"methods": {}, "ratios": {}, "forecasts": {}}
    keys = None
    for name in methods:
        t0 = time.perf_counter()
        fc = runners[name]()
        secs = time.perf_counter() - t0
        fc = fc[(fc["target_date"] <= last) & fc["horizon"].isin(HORIZONS)]
        fc = fc.drop(columns=[c for c in ("y",) if c in fc]).merge(truth, on=["store_id", "item_id", "target_date"])
        k = fc[["store_id", "item_id", "origin", "horizon"]]
        if keys is None:
            keys = k
        elif len(k) != len(keys):
            raise RuntimeError(f"{name} scored {len(k)} rows, expected {len(keys)}")
        bh = metrics_by(fc, "horizon")
        res["methods"][name] = {**metrics(fc), "seconds": round(secs, 1),
                                "wape_by_horizon": {int(r.horizon): round(r.wape, 4)
                                                    for r in cast("Iterable[Any]", bh.itertuples())},
                                "wape_h1_2": metrics(fc[fc["horizon"] <= 2])["wape"],
                                "wape_h1_2_oracle_day": _oracle_day_wape(fc[fc["horizon"] <= 2])}
        res["forecasts"][name] = fc
    if "ours" in res["methods"]:
        ow = res["methods"]["ours"]["wape"]
        for name, m in res["methods"].items():
            if name != "ours":
                res["ratios"][name] = round(ow / m["wape"], 3)
    res["n_rows"] = int(len(keys)) if keys is not None else 0
    res["protocol"] = (f"fit once on data <= {TRAIN_END}; origins {TEST_START}..{origins[-1].date()} daily; "
                       f"h=1..7; targets <= {TEST_END}; inputs dated <= origin; weather = forecast issued at the "
                       f"origin (replenish.data.weather error model, seed {WEATHER_SEED})")
    return res


def _oracle_day_wape(fc: pd.DataFrame) -> float:
    """WAPE after scaling each day's forecasts so that their sum over all series equals the day's actual total: what
    the method would score if every shock common to the day (weather, events, the whole chain's level) were known in
    advance. The rest of its error is each series' own day-to-day noise."""
    g = fc.groupby(["target_date", "horizon"])
    factor = g["y"].transform("sum") / g["p50"].transform("sum").where(lambda x: x > 0)
    adjusted = (fc["p50"] * factor).fillna(fc["p50"])
    return float((fc["y"] - adjusted).abs().sum() / fc["y"].sum())


def format_table(result: dict) -> str:
    hs = HORIZONS
    head = f"{'method':<26}{'WAPE':>7}{'h1-2':>7}" + "".join(f"{'h' + str(h):>7}" for h in hs) + \
        f"{'bias':>8}{'cover':>7}{'pinb':>7}{'secs':>8}{'ours/x':>8}"
    lines = [head, "-" * len(head)]
    for name, m in result["methods"].items():
        cov = f"{m['coverage']:.3f}" if "coverage" in m else "  -  "
        pin = f"{m['pinball']:.3f}" if "pinball" in m else "  -  "
        ratio = result["ratios"].get(name)
        lines.append(f"{name:<26}{m['wape']:>7.3f}{m['wape_h1_2']:>7.3f}" +
                     "".join(f"{m['wape_by_horizon'].get(h, float('nan')):>7.3f}" for h in hs) +
                     f"{m['bias']:>+8.3f}{cov:>7}{pin:>7}{m['seconds']:>8.1f}" +
                     (f"{ratio:>8.3f}" if ratio is not None else f"{'':>8}"))
    lines.append(f"rows per method: {result['n_rows']}; {result['protocol']}")
    if "ours" in result["methods"]:
        lines.append("ours with each day's total over all series known in advance (an oracle, not a method): "
                     f"WAPE h1-2 {result['methods']['ours']['wape_h1_2_oracle_day']:.3f}")
    return "\n".join(lines)


def to_json(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "forecasts"}


if __name__ == "__main__":
    import json
    import sys

    from replenish.data.bakery import load_panel
    from replenish.forecasting.runtime import use_passive_openmp_wait

    use_passive_openmp_wait()  # run as a script: before lightgbm loads
    r = run_forecast_bench(load_panel(), methods=sys.argv[1:] or None)
    print(format_table(r))
    print(json.dumps(to_json(r), indent=1, default=str))

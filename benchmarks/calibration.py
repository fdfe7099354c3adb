"""Interval validation table over several panels (``replenish bench calibration``).

Every panel runs the production recipe (ml.predict.fit_calibrated: a backtest model on the 56 days before the
training end calibrates the final model's intervals) and is scored on a later test window, h = 1..7, stock-out
days excluded (their sales are not demand), and the days a store was closed (ml.calibration.store_closed: sold 0
on a forecast of 0, inside any interval; counted in ``closed_days``). Reported per panel and per series group
(volume, intermittency, history): P10-P90 coverage before and after calibration, WAPE, bias, and the share of
demand at or below the P70 the proposals interpolate (replenish.orders.quantiles; target 0.70).

Demand is counted in units: where more than 10 % of days sell nothing, a calibrated P10 is 0 and the days that
sell 0 lie on it, inside the interval whichever side of the 10 % they stand for. A discrete forecast's interval
covers at least the share strictly between its bounds and at most the share at or between them, and a calibrated
one has 0.80 between the two (P(y < q) <= level <= P(y <= q) at each bound). Each cell is judged on both: the
inclusive coverage in the target band (as a continuous forecast is), and, as a forecast of counts, that band
reached by [strict, inclusive] (``outside_target_discrete``).

Panels: the bakery (real), one bakery store, the bakery without drivers, the bakery with six months of history,
an intermittent bakery (demand binomially thinned to 3 %: the real patterns at slow-mover volumes), the bakery
with a third of its stores opened two months before the training end (short history), and a subset of the
M5-size synthetic panel (benchmarks.synthetic_panel: slow movers, trends, censored stock-outs).

One model trained at the training end serves the whole test window, or, with ``retrain_days``, a new one every
that many days, as production's weekly training does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

HORIZONS = list(range(1, 8))
TARGET = (0.75, 0.85)


def _bakery_panels() -> list[dict[str, Any]]:
    import pandas as pd

    from ml.config import DRIVER_COLUMNS
    from ml.data import panel_to_frame
    from replenish.data.bakery import load_panel
    from replenish.data.weather import derive_weather_forecasts

    f = panel_to_frame(load_panel())
    wf = derive_weather_forecasts(f, seed=18)
    win = {"train_end": "2018-12-31", "test_start": "2019-01-01", "test_end": "2019-04-30"}
    store = int(sorted(f["store_id"].unique())[0])
    thin = f.copy()
    rng = np.random.default_rng(5)
    ok = thin["y"].notna()
    thin.loc[ok, "y"] = rng.binomial(thin.loc[ok, "y"].to_numpy(np.int64), 0.03).astype(float)
    bare = f.copy()
    bare[DRIVER_COLUMNS] = np.nan
    short = f[f["date"] >= pd.Timestamp("2018-07-01")].reset_index(drop=True)
    # new stores: every third store opens 2018-11-01 (61 days before the training end, short history in the test)
    late = f["store_id"].isin(sorted(f["store_id"].unique())[::3]) & (f["date"] < pd.Timestamp("2018-11-01"))
    new_stores = f[~late].reset_index(drop=True)
    return [
        {"panel": "bakery", "frame": f, "weather": wf, **win},
        {"panel": f"bakery_one_store_{store}", "frame": f[f["store_id"] == store].reset_index(drop=True),
         "weather": wf, **win},
        {"panel": "bakery_no_drivers", "frame": bare, "weather": None, **win},
        {"panel": "bakery_short_history", "frame": short, "weather": wf, **win},
        {"panel": "bakery_intermittent", "frame": thin, "weather": wf, **win},
        {"panel": "bakery_new_stores", "frame": new_stores, "weather": wf, **win},
    ]


def _synthetic_panel(stores: int, items: int) -> dict[str, Any]:
    import pandas as pd

    from benchmarks.synthetic_panel import synthetic_panel
    from replenish.data.weather import derive_weather_forecasts

    f = synthetic_panel(n_stores=stores, n_items=items, days=730, future_days=0, seed=0)
    f = f.astype({"store_id": "int64", "item_id": "int64"})
    last = pd.to_datetime(f["date"]).max()
    return {"panel": f"synthetic_{stores}x{items}", "frame": f, "weather": derive_weather_forecasts(f, seed=18),
            "train_end": str((last - pd.Timedelta(days=63)).date()),
            "test_start": str((last - pd.Timedelta(days=62)).date()), "test_end": str(last.date())}


def _summary(P: pd.DataFrame) -> dict[str, Any]:
    from replenish.orders.quantiles import quantile

    y = P["y"].to_numpy(float)
    sy = y.sum()
    q70 = quantile(P["p10"], P["p50"], P["p90"], 0.7)
    return {"n": int(len(P)), "wape": round(float(np.abs(y - P["p50"]).sum() / sy), 4) if sy > 0 else None,
            "bias": round(float((P["p50"].sum() - sy) / sy), 4) if sy > 0 else None,
            "coverage_raw": round(float(((y >= P["p10_raw"]) & (y <= P["p90_raw"])).mean()), 3),
            "coverage": round(float(((y >= P["p10"]) & (y <= P["p90"])).mean()), 3),
            "coverage_strict": round(float(((y > P["p10"]) & (y < P["p90"])).mean()), 3),
            "below_p10": round(float((y < P["p10"]).mean()), 3), "above_p90": round(float((y > P["p90"]).mean()), 3),
            "at_p10": round(float((y == P["p10"]).mean()), 3),
            "at_or_below_p70": round(float((y <= q70).mean()), 3)}


ROLLING_DAYS = 56      # the rolling recalibration's window of matured targets (as the backtest's)


def rolling_calibration(rows: pd.DataFrame, pool: pd.DataFrame, days: int = ROLLING_DAYS) -> pd.DataFrame:
    """``rows`` (one origin each, raw p10/p50/p90 and the series groups) calibrated at each origin on the residuals
    of ``pool`` (the backtest's rows, then the earlier origins' forecasts, raw) whose target lies in the ``days`` up
    to that origin: what is known on the night of the forecast. Not in production: on a model trained once it
    follows the drift the once-fitted calibration misses, which the weekly training already follows
    (``--retrain-days 7``, docs/benchmarks.md)."""
    import pandas as pd

    from ml.calibration import GROUP_COLUMNS, apply_calibration, fit_calibration

    targets = pd.to_datetime(pool["target_date"])
    parts = []
    for origin, part in rows.groupby(pd.to_datetime(rows["origin"]), sort=True):
        recent = pool[(targets > origin - pd.Timedelta(days=days)) & (targets <= origin)]
        if not len(recent):
            parts.append(part)
            continue
        cal = fit_calibration(recent, recent[GROUP_COLUMNS])
        parts.append(apply_calibration(part, part[GROUP_COLUMNS], cal))
    return pd.concat(parts).loc[rows.index]


def _rolling_summary(R: pd.DataFrame) -> dict[str, Any]:
    y = R["y"].to_numpy(float)
    return {"coverage_rolling": round(float(((y >= R["p10"]) & (y <= R["p90"])).mean()), 3),
            "below_p10_rolling": round(float((y < R["p10"]).mean()), 3),
            "above_p90_rolling": round(float((y > R["p90"]).mean()), 3)}


def _fits(spec: dict[str, Any], cfg, stride: int, retrain_days: int | None) -> list[tuple[dict, Any, Any]]:
    """(calibration, backtest rows, raw forecasts) per model: one trained at train_end for the whole test window,
    or, with ``retrain_days``, a new one every that many days (production trains weekly), each forecasting the
    origins up to the next."""
    import pandas as pd

    from ml.predict import fit_after_backtest

    frame, wf = spec["frame"], spec["weather"]
    test_end = pd.Timestamp(spec["test_end"])
    origins = pd.date_range(spec["test_start"], test_end - pd.Timedelta(days=1), freq=f"{stride}D")
    ends = [pd.Timestamp(spec["train_end"])]
    while retrain_days and ends[-1] + pd.Timedelta(days=retrain_days) < origins[-1]:
        ends.append(ends[-1] + pd.Timedelta(days=retrain_days))
    out = []
    for i, end in enumerate(ends):
        until = ends[i + 1] if i + 1 < len(ends) else test_end
        serves = origins[(origins > end) & (origins <= until)]
        if not len(serves):
            continue
        model, backtest = fit_after_backtest(cfg, frame, end, wf)
        cal, model.calibration = model.calibration, None
        assert cal is not None
        out.append((cal, backtest, model.predict(frame, serves, HORIZONS, weather=wf).assign(fit=i)))
    return out


def run_panel(spec: dict[str, Any], cfg=None, stride: int = 2, retrain_days: int | None = None) -> dict[str, Any]:
    import pandas as pd

    from ml.calibration import GROUP_COLUMNS, apply_calibration, near_holiday, series_groups, store_closed
    from ml.config import ForecastConfig
    from ml.features import make_grid

    cfg = cfg or ForecastConfig(origin_stride=6, horizons=HORIZONS)
    t0 = time.perf_counter()
    frame, wf = spec["frame"], spec["weather"]
    fits = _fits(spec, cfg, stride, retrain_days)
    test_end = pd.Timestamp(spec["test_end"])
    P = pd.concat([f[2] for f in fits], ignore_index=True)
    P = P[(P["target_date"] <= test_end) & P["y"].notna()].reset_index(drop=True)
    grid = make_grid(frame, cfg, wf)
    s = pd.MultiIndex.from_frame(grid.keys[["store_id", "item_id"]]).get_indexer(
        pd.MultiIndex.from_frame(P[["store_id", "item_id"]].astype("int64")))
    t = (pd.to_datetime(P["target_date"]) - grid.dates[0]).dt.days.to_numpy()
    closed, stockout = store_closed(grid)[s, t], grid.stockout[s, t]
    measured = ~stockout & ~closed
    holiday_near = near_holiday(grid)[s, t][measured]       # left out of the rolling pool, as of the backtest's
    P = P[measured].reset_index(drop=True)
    groups = series_groups(grid, P)
    # each model's forecasts with its own calibration, as production applies it (ml.model.ForecastModel.
    # applies_calibration): not when its backtest model was trained on too little of the history
    parts = []
    for i, (cal, _, _) in enumerate(fits):
        rows = (P["fit"] == i).to_numpy()
        part, part_groups = P[rows], groups[rows]
        parts.append(apply_calibration(part, part_groups, cal) if cal.get("representative", True) else part.copy())
    C = pd.concat(parts).loc[P.index]
    C["p10_raw"], C["p90_raw"] = P["p10"], P["p90"]
    C = C.join(groups[GROUP_COLUMNS])
    R = None
    if len(fits) == 1:        # the rolling recalibration is measured on the model trained once
        raw = P.join(groups[GROUP_COLUMNS]).assign(stockout=False, near_holiday=holiday_near, closed=False)
        R = rolling_calibration(raw, pd.concat([fits[0][1], raw], ignore_index=True))
    out: dict[str, Any] = {"panel": spec["panel"], "series": int(frame[["store_id", "item_id"]].drop_duplicates()
                                                                  .shape[0]),
                           "train_end": spec["train_end"], "test": f"{spec['test_start']}..{spec['test_end']}",
                           "models": len(fits), "closed_days": int((closed & ~stockout).sum()),
                           **_summary(C), **(_rolling_summary(R) if R is not None else {}),
                           "groups": {}}
    for g in GROUP_COLUMNS:
        for label, part in C.groupby(g):
            out["groups"][f"{g}={label}"] = {**_summary(part),
                                             **(_rolling_summary(R.loc[part.index]) if R is not None else {})}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["calibration_rows"] = int(sum(f[0]["n_rows"] for f in fits))
    out["calibration_applied"] = all(bool(f[0].get("representative", True)) for f in fits)
    return out


def in_target(m: dict[str, Any], discrete: bool = False) -> bool:
    """Coverage in the target band; ``discrete``: the band reached by [strict, inclusive] coverage, which a
    calibrated forecast of counts spans 0.80 with (the days on a bound may stand on either side of its level)."""
    if not discrete:
        return TARGET[0] <= m["coverage"] <= TARGET[1]
    return m["coverage_strict"] <= TARGET[1] and m["coverage"] >= TARGET[0]


def run_calibration_bench(synthetic_stores: int = 2, synthetic_items: int = 300,
                          retrain_days: int | None = None) -> dict[str, Any]:
    specs = _bakery_panels() + [_synthetic_panel(synthetic_stores, synthetic_items)]
    rows = [run_panel(s, retrain_days=retrain_days) for s in specs]
    cells = [(r["panel"], None, r) for r in rows] + [
        (r["panel"], g, v) for r in rows for g, v in r["groups"].items() if v["n"] >= 100]
    misses = [f"{p}{'/' + g if g else ''}: {m['coverage']}" for p, g, m in cells if not in_target(m)]
    discrete = [f"{p}{'/' + g if g else ''}: {m['coverage_strict']}-{m['coverage']}" for p, g, m in cells
                if not in_target(m, discrete=True)]
    trained = (f"retrained every {retrain_days} days from train_end, as production's weekly training"
               if retrain_days else "trained once at train_end")
    return {"panels": rows, "target": list(TARGET), "outside_target": misses, "outside_target_discrete": discrete,
            "retrain_days": retrain_days,
            "protocol": f"production recipe per panel (a 56-day backtest calibrates each model; {trained}); "
                        "test origins every 2nd day, h=1..7, stock-out days excluded; groups with >= 100 rows "
                        "count towards the target (cov: the production calibration, y in [P10, P90]; strict: "
                        "y in (P10, P90); =P10: the share on a P10 of 0, the days that sell nothing). rolling (models "
                        "trained once only): not in production, recalibrated at each origin on the matured targets "
                        f"of the last {ROLLING_DAYS} days (backtest, then earlier test origins)"}


def format_table(result: dict[str, Any]) -> str:
    head = (f"{'panel / group':<44}{'n':>8}{'WAPE':>8}{'bias':>8}{'cov raw':>9}{'cov':>7}{'strict':>8}{'<P10':>7}"
            f"{'=P10':>7}{'>P90':>7}{'<=P70':>7}{'rolling':>9}")
    lines = [head, "-" * len(head)]

    def line(name: str, m: dict) -> str:
        w = f"{m['wape']:.3f}" if m["wape"] is not None else "-"
        b = f"{m['bias']:+.3f}" if m["bias"] is not None else "-"
        return (f"{name:<44}{m['n']:>8}{w:>8}{b:>8}{m['coverage_raw']:>9.3f}{m['coverage']:>7.3f}"
                f"{m['coverage_strict']:>8.3f}{m['below_p10']:>7.3f}{m['at_p10']:>7.3f}{m['above_p90']:>7.3f}"
                f"{m['at_or_below_p70']:>7.3f}"
                + (f"{m['coverage_rolling']:>9.3f}" if "coverage_rolling" in m else f"{'-':>9}"))

    for r in result["panels"]:
        lines.append(line(f"{r['panel']} ({r['series']} series, {r['seconds']}s)", r))
        for g, m in r["groups"].items():
            lines.append(line(f"  {g}", m))
    lines.append(f"target coverage {result['target'][0]}-{result['target'][1]}; outside: "
                 + (", ".join(result["outside_target"]) or "none"))
    lines.append("as a forecast of counts ([strict, cov] reaches the band); outside: "
                 + (", ".join(result["outside_target_discrete"]) or "none"))
    lines.append(result["protocol"])
    return "\n".join(lines)

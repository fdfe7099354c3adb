"""Rolling-origin backtest and metrics (WAPE, bias, pinball, P10-P90 coverage) + the censoring experiment."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def metrics(df: pd.DataFrame) -> dict[str, float]:
    """df with y, p50 (and optionally p10, p90). Rows with unknown y are dropped."""
    d = df[df["y"].notna()]
    y, p = d["y"].to_numpy(float), d["p50"].to_numpy(float)
    sy = y.sum()
    out = {"n": int(len(d)), "wape": float(np.abs(y - p).sum() / sy), "bias": float((p.sum() - sy) / sy)}
    pin = 0.0
    for q, c in ((0.1, "p10"), (0.5, "p50"), (0.9, "p90")):
        if c in d:
            e = y - d[c].to_numpy(float)
            pin += float(np.maximum(q * e, (q - 1) * e).sum() / sy)
    if "p10" in d and "p90" in d:
        out["coverage"] = float(((y >= d["p10"]) & (y <= d["p90"])).mean())
        out["pinball"] = pin / 3      # mean scaled pinball loss over P10/P50/P90 (sum / sum y)
    return out


def metrics_by(df: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for key, g in cast("Iterable[tuple[Any, pd.DataFrame]]", df[df["y"].notna()].groupby(by)):
        rows.append({**(dict(zip(by, key, strict=False)) if isinstance(by, list) else {by: key}), **metrics(g)})
    return pd.DataFrame(rows)


def rolling_origin_backtest(frame: pd.DataFrame, start, end, fit_predict: Callable, horizons=range(1, 8),
                            refit: str = "once") -> dict:
    """Origins daily over [start, end]; ``fit_predict(train_frame, full_frame, origins, horizons)`` returns
    forecasts (store_id, item_id, origin, target_date, horizon, p10, p50, p90, y). ``refit='once'`` trains on data
    dated < start; predictions at origin o use history <= o only (enforced by the feature guard).
    Returns pooled metrics + per horizon / store / item tables and the forecast frame."""
    import pandas as pd

    origins = pd.date_range(start, end, freq="D")
    train = frame[pd.to_datetime(frame["date"]) < pd.Timestamp(start)]
    fc = fit_predict(train, frame, origins, list(horizons))
    fc = fc[fc["target_date"] <= pd.to_datetime(frame.loc[frame["y"].notna(), "date"]).max()]
    return {"pooled": metrics(fc), "by_horizon": metrics_by(fc, "horizon"), "by_store": metrics_by(fc, "store_id"),
            "by_item": metrics_by(fc, "item_id"), "forecasts": fc}


def simulate_stockouts(frame: pd.DataFrame, share: float = 0.2, cap: float = 0.6, seed: int = 0) -> pd.DataFrame:
    """Censor the panel: on a random ``share`` of days, sales are capped at ``cap`` x demand and flagged as
    stock-outs. Column ``true_y`` keeps the real demand."""
    rng = np.random.default_rng(seed)
    f = frame.copy()
    f["true_y"] = f["y"]
    hit = (rng.uniform(size=len(f)) < share) & f["y"].notna()
    f.loc[hit, "y"] = np.floor(f.loc[hit, "y"] * cap)
    f["is_stockout"] = hit
    return f


def censoring_experiment(frame: pd.DataFrame, train_end="2018-12-31", test_start="2019-01-01",
                         test_end="2019-02-28", horizons=range(1, 8), seed: int = 0, cfg=None) -> pd.DataFrame:
    """Train on artificially censored sales with and without the stock-out treatment; score P50 against the true
    (uncensored) demand in the test window (the test window's history is censored too)."""
    import pandas as pd

    from ml.config import ForecastConfig
    from ml.model import ForecastModel

    cens = simulate_stockouts(frame, seed=seed)
    rows = []
    base = cfg or ForecastConfig(quantiles=[0.5], origin_stride=3)
    for label, mask in (("masked (ours)", True), ("naive: train on censored sales", False)):
        cfg_i = base.model_copy(update={"mask_stockouts": mask})
        m = ForecastModel(cfg_i).fit(cens.drop(columns="true_y"), end_date=train_end)
        P = m.predict(cens.drop(columns="true_y"), pd.date_range(test_start, test_end), horizons)
        truth = cens[["store_id", "item_id", "date", "true_y"]].rename(columns={"date": "target_date"})
        P = P.drop(columns="y").merge(truth, on=["store_id", "item_id", "target_date"]).rename(columns={"true_y": "y"})
        rows.append({"method": label, **metrics(P[["y", "p50"]])})
    return pd.DataFrame(rows)

"""Forecast metrics (WAPE, bias, pinball, P10-P90 coverage), pooled, by group and per series x horizon (additive
sums, as the registry stores them), and simulated stock-outs for censoring tests."""

from __future__ import annotations

from collections.abc import Iterable
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


def series_horizon_metrics(fc: pd.DataFrame) -> list[dict]:
    """Backtest forecasts (store_id, item_id, horizon, y, p10, p50, p90) -> one dict per (store, item, horizon)
    with additive sums (so any roll-up, e.g. per store or per horizon, is exact in SQL) and the derived metrics.
    WAPE/bias/pinball are None where the series sold nothing in the window."""
    d = fc[fc["y"].notna()].copy()
    y, p = d["y"].to_numpy(float), d["p50"].to_numpy(float)
    d["_abs"] = np.abs(y - p)
    has_q = "p10" in d and "p90" in d
    if has_q:
        pin = np.zeros(len(d))
        for q, c in ((0.1, "p10"), (0.5, "p50"), (0.9, "p90")):
            e = y - d[c].to_numpy(float)
            pin += np.maximum(q * e, (q - 1) * e)
        d["_pin"] = pin
        d["_cov"] = ((y >= d["p10"].to_numpy(float)) & (y <= d["p90"].to_numpy(float))).astype(int)
    aggs = {"n": ("y", "size"), "sum_y": ("y", "sum"), "sum_p50": ("p50", "sum"), "sum_abs_err": ("_abs", "sum")}
    if has_q:
        aggs.update(sum_pinball=("_pin", "sum"), n_covered=("_cov", "sum"))
    g = d.groupby(["store_id", "item_id", "horizon"], sort=True).agg(**aggs).reset_index()
    out = []
    for r in g.to_dict("records"):
        sy = float(r["sum_y"])
        rec: dict[str, Any]
        rec = {"store_id": int(r["store_id"]), "item_id": int(r["item_id"]), "horizon": int(r["horizon"]),
               "n": int(r["n"]), "sum_y": sy, "sum_p50": float(r["sum_p50"]), "sum_abs_err": float(r["sum_abs_err"]),
               "sum_pinball": float(r["sum_pinball"]) if has_q else None,
               "n_covered": int(r["n_covered"]) if has_q else None}
        rec["wape"] = rec["sum_abs_err"] / sy if sy > 0 else None
        rec["bias"] = (rec["sum_p50"] - sy) / sy if sy > 0 else None
        rec["pinball"] = rec["sum_pinball"] / sy / 3 if has_q and sy > 0 else None
        rec["coverage"] = rec["n_covered"] / rec["n"] if has_q and rec["n"] else None
        out.append(rec)
    return out

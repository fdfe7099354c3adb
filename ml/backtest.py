"""Forecast metrics (WAPE, bias, pinball, P10-P90 coverage) and simulated stock-outs for censoring tests."""

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

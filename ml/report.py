"""Self-contained HTML forecast report (matplotlib PNGs embedded as base64)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def write_forecast_report(forecasts: pd.DataFrame, path: Path | str, title: str = "Replenish forecast report",
                          horizon: int = 1, n_series: int = 4, table: str | None = None) -> Path:
    """``forecasts``: store_id, item_id, target_date, horizon, p10, p50, p90, y (backtest output).
    Plots actual vs P10/P50/P90 (at ``horizon``) for a few store x items, WAPE by horizon and by store."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ml.backtest import metrics, metrics_by

    fc = forecasts[forecasts["y"].notna()]
    parts = [f"<h1>{html.escape(title)}</h1>"]
    pooled = metrics(fc)
    parts.append("<p>" + ", ".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}"
                                   for k, v in pooled.items()) + "</p>")
    if table:
        parts.append(f"<pre>{html.escape(table)}</pre>")
    series = fc[["store_id", "item_id"]].drop_duplicates().head(n_series)
    fig, axes = plt.subplots(len(series), 1, figsize=(11, 2.6 * max(len(series), 1)), squeeze=False)
    for ax, (_, s) in zip(axes[:, 0], series.iterrows(), strict=False):
        d = fc[(fc["store_id"] == s.store_id) & (fc["item_id"] == s.item_id) & (fc["horizon"] == horizon)]
        d = d.sort_values("target_date")
        ax.fill_between(d["target_date"], d["p10"], d["p90"], alpha=0.3, label="P10-P90")
        ax.plot(d["target_date"], d["p50"], label="P50")
        ax.plot(d["target_date"], d["y"], "k.", ms=3, label="actual")
        ax.set_title(f"store {s.store_id} item {s.item_id} (h={horizon})", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    parts.append("<h2>Actual vs P10/P50/P90</h2>" + _png(fig))
    bh, bs = metrics_by(fc, "horizon"), metrics_by(fc, "store_id")
    fig, ax = plt.subplots(1, 2, figsize=(11, 3))
    ax[0].bar(bh["horizon"], bh["wape"])
    ax[0].set_title("WAPE by horizon")
    ax[1].bar(bs["store_id"].astype(str), bs["wape"])
    ax[1].set_title("WAPE by store")
    ax[1].tick_params(axis="x", labelsize=6, rotation=90)
    parts.append("<h2>Error by horizon and store</h2>" + _png(fig))
    parts.append("<h2>By horizon</h2>" + bh.to_html(index=False, float_format="%.3f"))
    parts.append("<h2>By item</h2>" + metrics_by(fc, "item_id").to_html(index=False, float_format="%.3f"))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) +
                    "</title></head><body style='font-family:sans-serif'>" + "".join(parts) + "</body></html>")
    return path

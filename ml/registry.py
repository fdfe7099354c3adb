"""Model versions in the warehouse (schema ``forecast``) and the promotion rule.

A new model becomes current only if its backtest WAPE is strictly lower than the current model's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

@dataclass
class ModelRecord:
    version: str
    backtest_wape: float
    artifact_path: str
    is_current: bool
    feature_config: dict
    train_end: object = None


def ensure_schema(engine: Engine) -> None:
    """Schema ``forecast`` is defined by the migrations (``replenish.migrations``): bring the database to head."""
    from replenish import migrations

    migrations.ensure_current(engine)


def current_model(engine: Engine) -> ModelRecord | None:
    from sqlalchemy import text

    ensure_schema(engine)
    with engine.connect() as conn:
        r = conn.execute(text("select version, backtest_wape, artifact_path, is_current, feature_config, train_end "
                              "from forecast.models where is_current")).first()
    return ModelRecord(*cast("tuple[Any, ...]", r)) if r else None


def register_model(engine: Engine, version: str, params: dict, feature_config: dict, train_start, train_end,
                   backtest_metrics: dict, artifact_path: str, series_metrics: list[dict] | None = None,
                   calibration: dict | None = None) -> bool:
    """Insert the version; promote it (atomically) iff its backtest WAPE beats the current one. Returns promoted.

    Idempotent: registering the same version again replaces its row and its per-series metrics (a retried
    training task never duplicates). ``series_metrics`` (from :func:`series_horizon_metrics`) goes into
    ``forecast.backtest_metrics`` in the same transaction, so a version never exists without its metrics."""
    from sqlalchemy import text

    ensure_schema(engine)
    wape = float(backtest_metrics["wape"])
    with engine.begin() as conn:
        conn.execute(text("lock table forecast.models in exclusive mode"))
        cur = conn.execute(text("select version, backtest_wape from forecast.models where is_current")).first()
        if cur is not None and cur[0] == version:
            promote = True       # a retry of the current version stays current
        else:
            promote = cur is None or wape < float(cur[1])
        conn.execute(text(
            "insert into forecast.models (version, params, feature_config, train_start, train_end, backtest_metrics,"
            " backtest_wape, artifact_path, is_current, calibration) values (:v, cast(:p as jsonb),"
            " cast(:f as jsonb), :ts, :te, cast(:m as jsonb), :w, :a, false, cast(:c as jsonb))"
            " on conflict (version) do update set params = excluded.params,"
            " feature_config = excluded.feature_config, train_start = excluded.train_start,"
            " train_end = excluded.train_end, backtest_metrics = excluded.backtest_metrics,"
            " backtest_wape = excluded.backtest_wape, artifact_path = excluded.artifact_path,"
            " calibration = excluded.calibration"),
            {"v": version, "p": json.dumps(params), "f": json.dumps(feature_config), "ts": train_start,
             "te": train_end, "m": json.dumps(backtest_metrics, default=float), "w": wape, "a": str(artifact_path),
             "c": None if calibration is None else json.dumps(calibration, default=float)})
        if series_metrics is not None:
            conn.execute(text("delete from forecast.backtest_metrics where model_version = :v"), {"v": version})
            if series_metrics:
                import pandas as pd

                from replenish.bulk import copy_frame

                cols = ["store_id", "item_id", "horizon", "n", "sum_y", "sum_p50", "sum_abs_err", "sum_pinball",
                        "n_covered", "wape", "bias", "pinball", "coverage"]
                rows = pd.DataFrame(series_metrics, columns=cols)
                # nullable integers: a None among ints would make the column float ("3.0" is no integer to COPY)
                ints = ["store_id", "item_id", "horizon", "n", "n_covered"]
                rows[ints] = rows[ints].astype("Int64")
                rows.insert(0, "model_version", version)
                # COPY: the chain's 420,000 series x horizon rows took ~37 s as parameterised inserts
                copy_frame(conn, "forecast.backtest_metrics", rows)
        if promote:
            conn.execute(text("update forecast.models set is_current = false where is_current"))
            conn.execute(text("update forecast.models set is_current = true where version = :v"), {"v": version})
    return promote


def series_horizon_metrics(fc: pd.DataFrame) -> list[dict]:
    """Backtest forecasts (store_id, item_id, horizon, y, p10, p50, p90) -> one dict per (store, item, horizon)
    with additive sums (so any roll-up, e.g. per store or per horizon, is exact in SQL) and the derived metrics.
    WAPE/bias/pinball are None where the series sold nothing in the window."""
    import numpy as np

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

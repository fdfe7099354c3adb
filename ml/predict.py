"""Training + registration and the nightly prediction that writes ``forecast.forecasts``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

# the backtest window (origins every 2nd day over the last 56 days), shared with the simulator: see ml.calibration
from ml.calibration import BACKTEST_STRIDE
from ml.config import ForecastConfig

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


def artifact_dir() -> Path:
    try:
        from replenish.settings import get_settings

        return Path(get_settings().cache_dir) / "models"
    except Exception:  # noqa: BLE001
        return Path(".state/cache/models")


def train_and_register(engine: Engine, end_date, cfg: ForecastConfig | None = None, frame=None) -> dict:
    """Backtest (train on data <= end_date - 56d, origins every 2nd day over the last 56 days, h=1..7), then fit on
    all data <= end_date, save the artifact and register it (promoted only if its WAPE beats the current model). The
    backtest's residuals calibrate the intervals (ml.calibration), stored with the version and applied at
    prediction."""
    import pandas as pd

    from ml.backtest import metrics, metrics_by
    from ml.calibration import backtest_calibration, backtest_days
    from ml.data import mart_to_frame, mart_weather_forecasts
    from ml.model import ForecastModel
    from ml.registry import register_model, series_horizon_metrics

    cfg = cfg or ForecastConfig()
    end = pd.Timestamp(end_date)
    frame = frame if frame is not None else mart_to_frame(engine, end, cfg.max_horizon)
    frame = frame[pd.to_datetime(frame["date"]) <= end]
    weather = mart_weather_forecasts(engine, pd.to_datetime(frame["date"]).min(), end)
    days = backtest_days(frame, end)          # BACKTEST_DAYS unless the warehouse's history is shorter
    bt = ForecastModel(cfg).fit(frame, end_date=end - pd.Timedelta(days=days), weather=weather)
    # the promotion metrics and the interval calibration come from the same backtest
    P, calibration = backtest_calibration(bt, frame, end, weather, days, BACKTEST_STRIDE)
    m: dict[str, Any] = metrics(P)
    # overall per model (jsonb in forecast.models); per store x item x horizon in forecast.backtest_metrics
    m["by_horizon"] = {int(r["horizon"]): {k: r[k] for k in ("n", "wape", "bias", "pinball", "coverage") if k in r}
                       for r in metrics_by(P, "horizon").to_dict("records")}
    m["backtest_origins"] = [str(pd.Timestamp(P["origin"].min()).date()), str(pd.Timestamp(P["origin"].max()).date())]
    model = ForecastModel(cfg).fit(frame, end_date=end, weather=weather)
    model.calibration = calibration
    version = f"lgbm-{end.date()}-{cfg.fingerprint()}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
    path = model.save(artifact_dir() / f"{version}.pkl")
    promoted = register_model(engine, version, cfg.lgbm.model_dump(), cfg.model_dump(), model.train_start,
                              model.train_end, m, str(path), series_metrics=series_horizon_metrics(P),
                              calibration=calibration)
    log.info("model %s backtest wape=%.4f promoted=%s", version, m["wape"], promoted)
    return {"version": version, "metrics": m, "promoted": promoted, "artifact_path": str(path)}


def _blocked_mask(store_ids, blocked: bool | Collection[int]):
    """Per row: is the row's store blocked? (a bool blocks every store or none)"""
    import numpy as np

    if isinstance(blocked, bool):
        return np.full(len(store_ids), blocked)
    return store_ids.astype("int64").isin([int(s) for s in blocked]).to_numpy()


def predict_for_date(engine: Engine, business_date, run_id: str, automation_blocked: bool | Collection[int],
                     frame=None, store_ids: Sequence[int] | None = None) -> int:
    """Forecast h=1..max_horizon from origin ``business_date`` with the current model and replace the rows of
    that origin in forecast.forecasts (delete + insert in one transaction). Without a current model every series
    gets the item-profile fallback. Rows are flagged when automation is blocked for their store or the fallback was
    used: ``automation_blocked`` is the quality gate's blocked store ids (True: every store, False: none).
    ``store_ids`` limits the run (and the rows it replaces) to those stores: one partition of the nightly DAG."""
    import pandas as pd
    from sqlalchemy import text

    from ml.data import mart_to_frame, mart_weather_forecasts
    from ml.model import ForecastModel, item_profile_fallback
    from ml.registry import current_model, ensure_schema
    from ml.weather import MAX_ISSUE_AGE_DAYS
    from replenish.bulk import copy_frame

    ensure_schema(engine)
    origin = pd.Timestamp(business_date)
    rec = current_model(engine)
    model = None
    if rec and Path(rec.artifact_path).exists():
        try:
            model = ForecastModel.load(Path(rec.artifact_path))
        except ValueError as e:  # an artifact this code cannot feed: forecast with the fallback, flagged
            log.error("current model %s unusable, using the fallback: %s", rec.version, e)
    cfg = model.cfg if model else ForecastConfig()
    ids = None if store_ids is None else [int(s) for s in store_ids]
    # A partition reads its own stores' rows only; the fallback profiles an item over all stores, so the frame of
    # every store is read when a fallback is needed (short series, no model): a partition then writes exactly what
    # the single-process run writes, without every partition reading the whole chain every night.
    whole = frame
    if frame is None:
        part = mart_to_frame(engine, origin, cfg.max_horizon, store_ids=ids)
        whole = part if ids is None else None
    else:
        part = frame if ids is None else frame[frame["store_id"].isin(ids)]

    def every_store() -> pd.DataFrame:
        return whole if whole is not None else mart_to_frame(engine, origin, cfg.max_horizon)

    if model is not None:
        # the forecasts issued at the origin (and the two days before, standing in for a missing delivery)
        weather = mart_weather_forecasts(engine, origin - pd.Timedelta(days=MAX_ISSUE_AGE_DAYS), origin, store_ids=ids)
        P = model.predict(part, [origin], weather=weather)
        if ids is not None and P["is_fallback"].any():
            short = P["is_fallback"].astype(bool)
            fb = item_profile_fallback(every_store(), P.loc[short], cfg)
            P.loc[short, fb.columns] = fb.to_numpy()
            # calibrated like the single-process run's fallback rows (the groups are per series: the partition's)
            P.loc[short, fb.columns] = model.calibrate_rows(part, P.loc[short])[list(fb.columns)].to_numpy()
        assert rec is not None  # a model is only loaded from the current record
        version = rec.version
    else:
        keys = part[["store_id", "item_id"]].drop_duplicates()
        P = pd.concat([keys.assign(origin=origin, horizon=h, target_date=origin + pd.Timedelta(days=h))
                       for h in cfg.horizons], ignore_index=True)
        fb = item_profile_fallback(every_store(), P, cfg)
        P = pd.concat([P, fb], axis=1).assign(is_fallback=True)
        version = None
    out = pd.DataFrame({
        "store_id": P["store_id"].astype("int64"), "item_id": P["item_id"].astype("int64"),
        "origin_date": origin.date(), "target_date": pd.to_datetime(P["target_date"]).dt.date,
        "horizon": P["horizon"].astype("int64"), "p10": P["p10"].astype(float), "p50": P["p50"].astype(float),
        "p90": P["p90"].astype(float), "model_version": version,
        "is_flagged": _blocked_mask(P["store_id"], automation_blocked) | P["is_fallback"].astype(bool).to_numpy(),
        "run_id": run_id,
    })
    with engine.begin() as conn:
        if ids is None:
            conn.execute(text("delete from forecast.forecasts where origin_date = :o"), {"o": origin.date()})
        else:
            conn.execute(text("delete from forecast.forecasts where origin_date = :o and store_id = any(:s)"),
                         {"o": origin.date(), "s": ids})
        # COPY: the chain's 420,000 rows a night took ~55 s as parameterised inserts
        copy_frame(conn, "forecast.forecasts", out)
    return len(out)

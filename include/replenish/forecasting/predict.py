"""The nightly forecast: the current model (or the item-profile fallback) predicts from the business date as
origin, streamed by chunks of stores read from the marts (``ml.predict.forecast_stores``), and the origin's rows of
``forecast.forecasts`` are replaced (COPY, one transaction), flagged where the quality gate blocked the store."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ml.predict import PREDICT_CHUNK_SERIES

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    import pandas as pd
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


def blocked_mask(store_ids, blocked: bool | Collection[int]):
    """Per row: is the row's store blocked? (a bool blocks every store or none)"""
    import numpy as np

    if isinstance(blocked, bool):
        return np.full(len(store_ids), blocked)
    return store_ids.astype("int64").isin([int(s) for s in blocked]).to_numpy()


def predict_for_date(engine: Engine, business_date, run_id: str, automation_blocked: bool | Collection[int],
                     frame: pd.DataFrame | None = None, store_ids: Sequence[int] | None = None,
                     chunk_series: int = PREDICT_CHUNK_SERIES) -> int:
    """Forecast h=1..max_horizon from origin ``business_date`` with the current model and replace the rows of
    that origin in forecast.forecasts (delete + insert in one transaction). Without a current model every series
    gets the item-profile fallback. Rows are flagged when automation is blocked for their store or the fallback was
    used: ``automation_blocked`` is the quality gate's blocked store ids (True: every store, False: none).
    ``store_ids`` limits the run (and the rows it replaces) to those stores: one partition of the nightly DAG.
    The stores are read and predicted in chunks of about ``chunk_series`` series
    (:func:`ml.predict.forecast_stores`)."""
    import pandas as pd
    from sqlalchemy import text

    from ml.config import ForecastConfig
    from ml.model import ForecastModel
    from ml.predict import forecast_frame, forecast_stores
    from ml.weather import MAX_ISSUE_AGE_DAYS
    from replenish.bulk import copy_frame
    from replenish.forecasting.inputs import (
        history_frame,
        mart_series_counts,
        mart_store_ids,
        mart_to_frame,
        mart_weather_forecasts,
    )
    from replenish.forecasting.registry import current_model, ensure_schema

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
    version = rec.version if model is not None and rec is not None else None
    ids = None if store_ids is None else [int(s) for s in store_ids]
    # A partition reads its own stores' rows only, a chunk at a time; the fallback profiles an item over all stores,
    # so its items' rows are read from every store: a partition then writes exactly what the single-process run
    # writes, without every partition reading the whole chain every night.
    def weather(chunk: list[int]) -> pd.DataFrame | None:
        # the forecasts issued at the origin (and the days before, standing in for a missing delivery)
        return mart_weather_forecasts(engine, origin - pd.Timedelta(days=MAX_ISSUE_AGE_DAYS), origin, store_ids=chunk)

    if frame is None:
        stores = ids if ids is not None else mart_store_ids(engine, origin, cfg.max_horizon)
        P = forecast_stores(model, cfg, origin, stores,
                            lambda chunk: mart_to_frame(engine, origin, cfg.max_horizon, store_ids=chunk),
                            lambda items: history_frame(engine, origin, items), chunk_series,
                            sizes=mart_series_counts(engine, origin, stores), weather=weather)
    else:
        P = forecast_frame(model, cfg, origin, frame, ids, chunk_series, weather=weather)
    out = pd.DataFrame({
        "store_id": P["store_id"].astype("int64"), "item_id": P["item_id"].astype("int64"),
        "origin_date": origin.date(), "target_date": pd.to_datetime(P["target_date"]).dt.date,
        "horizon": P["horizon"].astype("int64"), "p10": P["p10"].astype(float), "p50": P["p50"].astype(float),
        "p90": P["p90"].astype(float), "model_version": version,
        "is_flagged": blocked_mask(P["store_id"], automation_blocked) | P["is_fallback"].astype(bool).to_numpy(),
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


def analyze_forecasts(engine: Engine) -> None:
    """Fresh planner statistics for the stored forecasts. The next night's accuracy mart reads the target dates just
    written; at chain size autovacuum re-analyses the table only every few dozen nights (10 % of it changed), and
    statistics that end before those dates plan a nested loop of every forecast against every sale of its day (the
    chain bench's month of forecasts: a refresh stopped after 25 minutes, 79 s once analysed)."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("ANALYZE forecast.forecasts"))


def prune_forecasts(engine: Engine, business_date: dt.date, retention_days: int) -> int:
    """Delete the stored forecasts whose target date is more than ``retention_days`` before ``business_date``, one
    target date per transaction (the first night after a long history, or a shorter retention, deletes many days
    without one long lock); returns the rows deleted. Re-running deletes nothing more."""
    from sqlalchemy import text

    cut = business_date - dt.timedelta(days=retention_days)
    with engine.connect() as conn:
        first = conn.execute(text("select min(target_date) from forecast.forecasts")).scalar()
    deleted, day = 0, first
    while day is not None and day < cut:
        with engine.begin() as conn:
            deleted += conn.execute(text("delete from forecast.forecasts where target_date = :d"), {"d": day}).rowcount
        day += dt.timedelta(days=1)
    return deleted

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
    from collections.abc import Callable, Collection, Sequence

    import pandas as pd
    from sqlalchemy.engine import Engine

    from ml.model import ForecastModel

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

    from ml.data import mart_to_frame, mart_weather_forecasts
    from ml.registry import register_model, series_horizon_metrics

    cfg = cfg or ForecastConfig()
    end = pd.Timestamp(end_date)
    # the weather forecasts issued up to the end (training reads the one issued at each origin)
    weather = mart_weather_forecasts(engine, "1900-01-01", end)
    # the mart's frame is passed on, not kept here: backtest_and_fit drops its future rows and frees it
    model, P, m = backtest_and_fit(frame if frame is not None else mart_to_frame(engine, end, cfg.max_horizon),
                                   end, cfg, weather)
    version = f"lgbm-{end.date()}-{cfg.fingerprint()}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
    path = model.save(artifact_dir() / f"{version}.pkl")
    promoted = register_model(engine, version, cfg.lgbm.model_dump(), cfg.model_dump(), model.train_start,
                              model.train_end, m, str(path), series_metrics=series_horizon_metrics(P),
                              calibration=model.calibration)
    log.info("model %s backtest wape=%.4f promoted=%s", version, m["wape"], promoted)
    return {"version": version, "metrics": m, "promoted": promoted, "artifact_path": str(path)}


def backtest_and_fit(frame: pd.DataFrame, end, cfg: ForecastConfig,
                     weather: pd.DataFrame | None = None) -> tuple[ForecastModel, pd.DataFrame, dict]:
    """The weekly training without the database: the backtest model (data <= end - 56 d, fewer on a short
    history) forecasts every 2nd origin of the window (h = 1..7); their residuals give the promotion metrics and the
    interval calibration; then the model is fit on all data <= end and carries that calibration. Returns the model,
    the backtest rows and their metrics. Each model's grid and matrix are freed before the next is built."""
    import pandas as pd

    from ml.backtest import metrics, metrics_by
    from ml.calibration import backtest_calibration, backtest_days
    from ml.model import ForecastModel

    end = pd.Timestamp(end)
    after = pd.to_datetime(frame["date"]) > end
    if after.any():                     # the future drivers' rows: a copy without them, only when there are any
        frame = frame[~after.to_numpy()]
    del after
    days = backtest_days(frame, end)    # BACKTEST_DAYS unless the history is shorter
    bt = ForecastModel(cfg).fit(frame, end_date=end - pd.Timedelta(days=days), weather=weather)
    # the promotion metrics and the interval calibration come from the same backtest
    P, calibration = backtest_calibration(bt, frame, end, weather, days, BACKTEST_STRIDE)
    del bt
    m: dict[str, Any] = metrics(P)
    # overall per model (jsonb in forecast.models); per store x item x horizon in forecast.backtest_metrics
    m["by_horizon"] = {int(r["horizon"]): {k: r[k] for k in ("n", "wape", "bias", "pinball", "coverage") if k in r}
                       for r in metrics_by(P, "horizon").to_dict("records")}
    m["backtest_origins"] = [str(pd.Timestamp(P["origin"].min()).date()), str(pd.Timestamp(P["origin"].max()).date())]
    model = ForecastModel(cfg).fit(frame, end_date=end, weather=weather)
    model.calibration = calibration
    return model, P, m


def _blocked_mask(store_ids, blocked: bool | Collection[int]):
    """Per row: is the row's store blocked? (a bool blocks every store or none)"""
    import numpy as np

    if isinstance(blocked, bool):
        return np.full(len(store_ids), blocked)
    return store_ids.astype("int64").isin([int(s) for s in blocked]).to_numpy()


# series whose history is read and featurised at once by the nightly forecast: at two years of daily rows a chunk
# of 8,000 series peaks near 2 GiB (frame, grid, feature temporaries); the chain's 30,000 series at once took 8.9 GB
PREDICT_CHUNK_SERIES = 8_000
# stores in the first chunk when the series per store are not known beforehand
FIRST_CHUNK_STORES = 16


def forecast_stores(model: ForecastModel | None, cfg: ForecastConfig, origin, stores: Sequence[int],
                    load: Callable[[list[int]], pd.DataFrame], history: Callable[[list[int] | None], pd.DataFrame],
                    chunk_series: int = PREDICT_CHUNK_SERIES, sizes: dict[int, int] | None = None,
                    weather: Callable[[list[int]], pd.DataFrame | None] | None = None) -> pd.DataFrame:
    """Forecasts h = 1..max_horizon from ``origin`` for the series of ``stores``, streamed by chunks of stores:
    ``load(store_ids)`` returns those stores' neutral frame (history and future drivers); each chunk is predicted
    and freed before the next is read, so memory follows the chunk (about ``chunk_series`` series), not the chain.

    Every feature is per series, so a chunk's rows equal the whole frame's. The one exception is the short-history
    fallback, which profiles an item over every store: its rows are filled at the end from ``history(item_ids)``
    (observed rows of those items in every store, None: of every item), once for all chunks.

    ``sizes`` (series per store, approximate) sizes the chunks; without it the first chunk has FIRST_CHUNK_STORES
    stores and the next ones follow the series per store seen so far. ``weather(store_ids)``: the weather forecasts
    issued at the origin for those stores (ml.weather). The fallback rows get the model's interval calibration, with
    the series groups taken while their chunk was loaded, as in a single pass."""
    import pandas as pd

    from ml.model import GROUP_PREFIX, item_profile_fallback

    origin = pd.Timestamp(origin)
    parts: list[pd.DataFrame] = []
    stores = [int(s) for s in stores]
    i, n = 0, FIRST_CHUNK_STORES
    while i < len(stores):
        if sizes is not None:
            n, total = 0, 0
            while i + n < len(stores) and (n == 0 or total + sizes.get(stores[i + n], 0) <= chunk_series):
                total += sizes.get(stores[i + n], 0)
                n += 1
        chunk = stores[i:i + n]
        i += len(chunk)
        part = load(chunk)
        n_series = len(part[["store_id", "item_id"]].drop_duplicates()) if len(part) else 0
        if n_series:
            if model is not None:
                parts.append(model.predict(part, [origin], weather=None if weather is None else weather(chunk),
                                           fallback=False))
            else:
                keys = part[["store_id", "item_id"]].drop_duplicates()
                parts.append(pd.concat([keys.assign(origin=origin, horizon=h, target_date=origin + pd.Timedelta(days=h))
                                        for h in cfg.horizons], ignore_index=True).assign(is_fallback=True))
        del part
        # the next chunk: as many stores as hold about chunk_series series at this chunk's series per store
        n = max(1, int(chunk_series // max(n_series / len(chunk), 1.0)))
    if not parts:
        names = [f"p{int(round(q * 100))}" for q in cfg.quantiles]
        return pd.DataFrame(columns=["store_id", "item_id", "origin", "target_date", "horizon", "is_fallback", *names])
    P = pd.concat(parts, ignore_index=True)
    del parts
    short = P["is_fallback"].to_numpy(bool)
    if short.any():
        fb = item_profile_fallback(fallback_history(history, P.loc[short, "item_id"].unique(), origin, cfg),
                                   P.loc[short], cfg)
        for c in fb.columns:
            if c not in P:
                P[c] = float("nan")
        P.loc[short, fb.columns] = fb.to_numpy()
        if model is not None:
            P.loc[short, fb.columns] = model.calibrate_fallback(P.loc[short])[list(fb.columns)].to_numpy()
    return P.drop(columns=[c for c in P.columns if c.startswith(GROUP_PREFIX)])


def fallback_history(history: Callable[[list[int] | None], pd.DataFrame], items, origin, cfg) -> pd.DataFrame:
    """What :func:`ml.model.item_profile_fallback` needs to profile ``items``: their observed rows in every store.
    An item with no usable row by the origin is profiled over every item, so then every item's rows are read."""
    import pandas as pd

    items = sorted(int(x) for x in items)
    f = history(items)
    usable = f["y"].notna() & (pd.to_datetime(f["date"]) <= pd.Timestamp(origin))
    if cfg.mask_stockouts and "is_stockout" in f:
        usable &= ~f["is_stockout"].astype(bool)
    if not set(items) <= set(f.loc[usable, "item_id"].astype("int64").unique().tolist()):
        f = history(None)
    return f


def forecast_frame(model: ForecastModel | None, cfg: ForecastConfig, origin, frame: pd.DataFrame,
                   store_ids: Sequence[int] | None = None, chunk_series: int = PREDICT_CHUNK_SERIES,
                   weather: Callable[[list[int]], pd.DataFrame | None] | None = None) -> pd.DataFrame:
    """:func:`forecast_stores` over an in-memory neutral frame (tests, benches): ``store_ids`` (None: every store
    of the frame) a chunk at a time, the fallback profiled over every store of the frame."""
    import numpy as np

    ids = np.asarray(frame["store_id"].to_numpy(), dtype=np.int64)
    stores = sorted(set(ids.tolist())) if store_ids is None else sorted(int(s) for s in store_ids)

    def history(items):
        return frame if items is None else frame[frame["item_id"].isin(items).to_numpy()]

    return forecast_stores(model, cfg, origin, stores, lambda chunk: frame[np.isin(ids, chunk)], history,
                           chunk_series, weather=weather)


def predict_for_date(engine: Engine, business_date, run_id: str, automation_blocked: bool | Collection[int],
                     frame=None, store_ids: Sequence[int] | None = None,
                     chunk_series: int = PREDICT_CHUNK_SERIES) -> int:
    """Forecast h=1..max_horizon from origin ``business_date`` with the current model and replace the rows of
    that origin in forecast.forecasts (delete + insert in one transaction). Without a current model every series
    gets the item-profile fallback. Rows are flagged when automation is blocked for their store or the fallback was
    used: ``automation_blocked`` is the quality gate's blocked store ids (True: every store, False: none).
    ``store_ids`` limits the run (and the rows it replaces) to those stores: one partition of the nightly DAG.
    The stores are read and predicted in chunks of about ``chunk_series`` series (:func:`forecast_stores`)."""
    import pandas as pd
    from sqlalchemy import text

    from ml.data import history_frame, mart_series_counts, mart_store_ids, mart_to_frame, mart_weather_forecasts
    from ml.model import ForecastModel
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

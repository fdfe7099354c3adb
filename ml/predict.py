"""The weekly training recipe (backtest, then fit) and the nightly prediction streamed by chunks of stores, on
frames and loaders the caller supplies: the warehouse side (reading the marts, the registry, writing
``forecast.forecasts``) is ``replenish.forecasting``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# the backtest window (origins every 2nd day over the last 56 days), shared with the simulator: see ml.calibration
from ml.calibration import BACKTEST_DAYS, BACKTEST_STRIDE
from ml.config import ForecastConfig

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import pandas as pd

    from ml.model import ForecastModel


def backtest_and_fit(frame: pd.DataFrame, end, cfg: ForecastConfig,
                     weather: pd.DataFrame | None = None) -> tuple[ForecastModel, pd.DataFrame, dict]:
    """The weekly training without the database: :func:`fit_after_backtest`, whose backtest rows also give the
    promotion metrics. Returns the model, the backtest rows (the days a store was closed left out) and their
    metrics."""
    import pandas as pd

    from ml.backtest import metrics, metrics_by

    end = pd.Timestamp(end)
    after = pd.to_datetime(frame["date"]) > end
    if after.any():                     # the future drivers' rows: a copy without them, only when there are any
        frame = frame[~after.to_numpy()]    # (the caller's whole frame is not held while the models train)
    del after
    model, P = fit_after_backtest(cfg, frame, end, weather)
    # scored on the days the stores were open, as the calibration and the validation table are: a closed day (sold 0
    # on a forecast of 0) is inside every interval and flattered the stored coverage
    P = P[~P["closed"].eq(True).to_numpy()] if "closed" in P else P
    m: dict[str, Any] = metrics(P)
    # overall per model (jsonb in forecast.models); per store x item x horizon in forecast.backtest_metrics
    m["by_horizon"] = {int(r["horizon"]): {k: r[k] for k in ("n", "wape", "bias", "pinball", "coverage") if k in r}
                       for r in metrics_by(P, "horizon").to_dict("records")}
    m["backtest_origins"] = [str(pd.Timestamp(P["origin"].min()).date()), str(pd.Timestamp(P["origin"].max()).date())]
    return model, P, m


def fit_calibrated(cfg: ForecastConfig, frame: pd.DataFrame, end, weather: pd.DataFrame | None = None,
                   days: int = BACKTEST_DAYS, stride: int = BACKTEST_STRIDE) -> ForecastModel:
    """The production recipe in one call (:func:`backtest_and_fit` without its metrics; benches and tests): the
    model on data <= end, its intervals calibrated on a backtest."""
    return fit_after_backtest(cfg, frame, end, weather, days, stride)[0]


def fit_after_backtest(cfg: ForecastConfig, frame: pd.DataFrame, end, weather: pd.DataFrame | None = None,
                       days: int = BACKTEST_DAYS,
                       stride: int = BACKTEST_STRIDE) -> tuple[ForecastModel, pd.DataFrame]:
    """The backtest model (data <= end - ``days``, fewer on a short history) forecasts every ``stride``-th origin
    of the window (h = 1..7); their residuals give the interval calibration (ml.calibration); then the model is fit
    on all data <= end and carries that calibration. Returns the model and the backtest rows. Each model's grid and
    matrix are freed before the next is built."""
    import pandas as pd

    from ml.calibration import backtest_calibration, backtest_days
    from ml.model import ForecastModel

    end = pd.Timestamp(end)
    days = min(days, backtest_days(frame, end))     # BACKTEST_DAYS unless the history is shorter
    bt = ForecastModel(cfg).fit(frame, end_date=end - pd.Timedelta(days=days), weather=weather)
    # the interval calibration (and backtest_and_fit's promotion metrics) come from the same backtest
    P, calibration = backtest_calibration(bt, frame, end, weather, days, stride)
    del bt
    model = ForecastModel(cfg).fit(frame, end_date=end, weather=weather)
    model.calibration = calibration
    return model, P


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

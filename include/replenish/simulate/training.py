"""The weekly fit of policy ``ours``: the production model configuration, one quantile model per thread.

``ml.model.ForecastModel.fit`` trains the P10/P50/P90 boosters one after the other, each with
``cfg.lgbm.num_threads`` OpenMP threads. On a shared 2-core machine that is the simulator's bottleneck:
LightGBM's OpenMP threads spin at the barriers of every histogram/split step, and when the cores are busy
with other work a spinning thread burns its time slice waiting for a descheduled partner (measured on the
bakery panel at load ~6-7: 0.5-0.9 s per boosting iteration with 2 threads vs 0.07-0.09 s with 1 thread).

:func:`fit_weekly` fits the same configuration on the same frame, but each quantile booster in its own Python
thread (LightGBM's C calls release the GIL) with one OpenMP thread: no barrier, no spinning, and the quantiles
use the cores in parallel. Same rows, same bins, same parameters but the thread count: the forecasts are
identical to the sequential 2-thread fit (checked on the bakery panel's full weekly fit, where one fit went
from 191 s wall / 125 s CPU to 50 s / 30 s at load ~6, and by ``test_parallel_weekly_fit_equals_the_production_fit``).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from ml.config import ForecastConfig
    from ml.model import ForecastModel


def single_thread(cfg: ForecastConfig) -> ForecastConfig:
    """The configuration with one LightGBM thread (everything that shapes the model is unchanged)."""
    return cfg.model_copy(update={"lgbm": cfg.lgbm.model_copy(update={"num_threads": 1})})


def fit_weekly(cfg: ForecastConfig, frame: pd.DataFrame, end_date: pd.Timestamp,
               weather: pd.DataFrame | None = None) -> ForecastModel:
    """``ForecastModel(cfg).fit(frame, end_date=end_date)``, one quantile per thread (see the module doc).

    The returned model predicts with one LightGBM thread too (a few hundred rows a day: threads only add
    barrier waits); its ``cfg`` equals ``cfg`` but for ``lgbm.num_threads``."""
    from ml.model import ForecastModel

    t0 = time.perf_counter()
    one = single_thread(cfg)

    def fit(q: float) -> ForecastModel:
        return ForecastModel(one.model_copy(update={"quantiles": [q]})).fit(frame.copy(), end_date=end_date,
                                                                              weather=weather)

    with ThreadPoolExecutor(max_workers=len(cfg.quantiles), thread_name_prefix="weekly-fit") as pool:
        parts = list(pool.map(fit, cfg.quantiles))
    rows = {p.n_train_rows for p in parts}
    if len(rows) != 1:   # pragma: no cover - the quantile fits share one frame and one row filter
        raise RuntimeError(f"quantile fits trained on different rows: {sorted(rows)}")
    model = ForecastModel(one)
    model.boosters = {q: p.boosters[q] for q, p in zip(cfg.quantiles, parts, strict=True)}
    model.train_start, model.train_end = parts[0].train_start, parts[0].train_end
    model.n_train_rows = parts[0].n_train_rows
    model.fit_seconds = time.perf_counter() - t0
    return model

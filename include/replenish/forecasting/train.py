"""The weekly training: read the marts, backtest and fit (``ml.predict.backtest_and_fit``), save the artifact in
``Settings.models_dir`` and register the version (``forecast.models``, which keeps the artifact's absolute path;
promoted only if its backtest WAPE beats the current model's)."""

from __future__ import annotations

import logging
from datetime import UTC
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

    from ml.config import ForecastConfig

log = logging.getLogger(__name__)


def train_and_register(engine: Engine, end_date, cfg: ForecastConfig | None = None,
                       frame: pd.DataFrame | None = None) -> dict:
    """Backtest (train on data <= end_date - 56d, origins every 2nd day over the last 56 days, h=1..7), then fit on
    all data <= end_date, save the artifact and register it (promoted only if its WAPE beats the current model). The
    backtest's residuals calibrate the intervals (ml.calibration), stored with the version and applied at
    prediction. ``frame``: the neutral frame to train on instead of the marts' (tests). The version names the
    end date, the configuration and the time of training (``replenish.clock``'s "now", in UTC)."""
    import pandas as pd

    from ml.backtest import series_horizon_metrics
    from ml.config import ForecastConfig
    from ml.predict import backtest_and_fit
    from replenish import clock
    from replenish.forecasting.inputs import mart_to_frame, mart_weather_forecasts
    from replenish.forecasting.registry import register_model
    from replenish.settings import get_settings

    cfg = cfg or ForecastConfig()
    end = pd.Timestamp(end_date)
    # the weather forecasts issued up to the end (training reads the one issued at each origin)
    weather = mart_weather_forecasts(engine, "1900-01-01", end)
    # the mart's frame is passed on, not kept here: backtest_and_fit drops its future rows and frees it
    model, P, m = backtest_and_fit(frame if frame is not None else mart_to_frame(engine, end, cfg.max_horizon),
                                   end, cfg, weather)
    with engine.connect() as conn:
        trained_at = clock.now(conn).astimezone(UTC)  # the platform's "now" (a pinned clock included), in UTC
    version = f"lgbm-{end.date()}-{cfg.fingerprint()}-{trained_at:%Y%m%d%H%M%S%f}"
    path = model.save(get_settings().models_dir / f"{version}.pkl")
    promoted = register_model(engine, version, cfg.lgbm.model_dump(), cfg.model_dump(), model.train_start,
                              model.train_end, m, str(path), series_metrics=series_horizon_metrics(P),
                              calibration=model.calibration)
    # a young warehouse's backtest model does not speak for this one: its calibration is stored, not applied
    calibrated = model.applies_calibration
    log.info("model %s backtest wape=%.4f promoted=%s intervals_calibrated=%s", version, m["wape"], promoted,
             calibrated)
    return {"version": version, "metrics": m, "promoted": promoted, "artifact_path": str(path),
            "intervals_calibrated": calibrated}

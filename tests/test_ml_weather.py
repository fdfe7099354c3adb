"""Honest weather: a feature row for origin o reads weather only as forecast at o (ml.weather), never observed later."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.forecast import small_frame

from ml.config import ForecastConfig
from ml.features import LeakageError, build_features, check_no_lookahead, make_grid
from replenish.data.weather import derive_weather_forecasts


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return small_frame()


@pytest.fixture(scope="module")
def forecasts(frame) -> pd.DataFrame:
    return derive_weather_forecasts(frame, seed=3)


def test_no_feature_row_uses_weather_observed_after_its_origin(frame, forecasts):
    cfg = ForecastConfig()
    for origin in ("2018-03-15", "2018-04-02"):
        # observed weather after o and forecasts issued after o scrambled: the features at o stay the same
        check_no_lookahead(frame, origin, cfg, weather=forecasts)


def test_reading_the_target_days_observed_weather_is_caught(frame, forecasts):
    # the former rule (weather read at the target date) is exactly what the guard must reject
    with pytest.raises(LeakageError, match="rain|temperature"):
        check_no_lookahead(frame, "2018-03-15", ForecastConfig(weather_drivers=[]), weather=forecasts)


def test_weather_feature_is_the_forecast_issued_at_the_origin(frame, forecasts):
    cfg = ForecastConfig(horizons=[1, 3, 7])
    origin = pd.Timestamp("2018-03-15")
    X = build_features(make_grid(frame, cfg, forecasts), [origin], cfg)
    issued = forecasts[forecasts["issue_date"] == origin].rename(columns={"weather_date": "target_date"})
    m = X.merge(issued, on=["store_id", "target_date"], suffixes=("", "_fc"))
    assert len(m) == len(X)
    np.testing.assert_allclose(m["rain"], m["rain_fc"], atol=1e-4)
    np.testing.assert_allclose(m["temperature"], m["temperature_fc"], atol=1e-4)
    observed = frame[["store_id", "item_id", "date", "temperature"]].rename(
        columns={"date": "target_date", "temperature": "observed"})
    o = X.merge(observed, on=["store_id", "item_id", "target_date"])
    assert not np.allclose(o["temperature"], o["observed"])


def test_a_missing_delivery_falls_back_to_an_older_forecast_never_a_later_one(frame, forecasts):
    cfg = ForecastConfig(horizons=[1, 2])
    origin = pd.Timestamp("2018-03-15")
    wf = forecasts[forecasts["issue_date"] != origin]
    X = build_features(make_grid(frame, cfg, wf), [origin], cfg)
    older = wf[wf["issue_date"] == origin - pd.Timedelta(days=1)].rename(columns={"weather_date": "target_date"})
    m = X.merge(older, on=["store_id", "target_date"], suffixes=("", "_fc"))
    assert len(m) == len(X)
    np.testing.assert_allclose(m["temperature"], m["temperature_fc"], atol=1e-4)


def test_without_forecasts_weather_is_missing_in_every_row(frame):
    cfg = ForecastConfig(horizons=[1, 7])
    X = build_features(make_grid(frame, cfg), ["2018-03-15"], cfg)
    assert X["rain"].isna().all() and X["temperature"].isna().all()


def test_derived_forecast_error_grows_with_lead_time(frame, forecasts):
    obs = frame.drop_duplicates(["store_id", "date"])[["store_id", "date", "rain", "temperature"]]
    m = forecasts.merge(obs.rename(columns={"date": "weather_date"}), on=["store_id", "weather_date"],
                        suffixes=("_fc", ""))
    lead = (m["weather_date"] - m["issue_date"]).dt.days
    t_err = (m["temperature_fc"] - m["temperature"]).abs().groupby(lead).mean()
    r_err = (m["rain_fc"] - m["rain"]).abs().groupby(lead).mean()
    for err in (t_err, r_err):
        assert err[1] < err[4] < err[7] < err[14]
    # seeded: the same seed gives the same forecasts, another seed others
    pd.testing.assert_frame_equal(forecasts, derive_weather_forecasts(frame, seed=3))
    assert not forecasts.equals(derive_weather_forecasts(frame, seed=4))

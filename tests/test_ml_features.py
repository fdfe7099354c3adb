"""Leakage guard: no feature may use data dated after the forecast origin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.config import ForecastConfig
from ml.features import LeakageError, build_features, check_no_lookahead, make_grid, y_at
from ml.tests_support import small_frame


def test_features_do_not_change_when_future_data_changes():
    f = small_frame()
    cfg = ForecastConfig()
    for origin in ("2018-03-15", "2018-04-02"):
        check_no_lookahead(f, origin, cfg)


def test_guard_catches_a_feature_computed_after_the_origin():
    f = small_frame()
    cfg = ForecastConfig()

    def leaky(grid, o, h):                   # reads the target date itself (o + h > o): must be rejected
        return "leak", y_at(grid.y, o + h, o)

    with pytest.raises(LeakageError):
        build_features(make_grid(f, cfg), ["2018-03-15"], cfg, extra=[leaky])

    def sneaky(grid, o, h):                  # bypasses y_at: caught by the end-to-end perturbation guard
        return "sneaky", grid.y[:, o + h]

    with pytest.raises(LeakageError):
        check_no_lookahead(f, "2018-03-15", cfg, extra=[sneaky])


def test_same_weekday_lag_is_the_last_same_weekday_at_or_before_origin():
    f = small_frame()
    cfg = ForecastConfig()
    X = build_features(make_grid(f, cfg), ["2018-03-15"], cfg)
    s0, i0 = f["store_id"].min(), f["item_id"].min()
    y = f[(f.store_id == s0) & (f.item_id == i0)].set_index("date")["y"]
    for h, src in ((1, "2018-03-09"), (7, "2018-03-15"), (8, "2018-03-09")):
        r = X[(X.store_id == s0) & (X.item_id == i0) & (X.horizon == h)].iloc[0]
        assert np.isclose(r["sw_mean_1"] * r["scale"], y[pd.Timestamp(src)])
        assert pd.Timestamp(src) <= pd.Timestamp("2018-03-15")
        assert r["dow"] == pd.Timestamp(r["target_date"]).dayofweek


def test_weekday_profile_and_holiday_neighbours():
    f = small_frame()
    cfg = ForecastConfig(weekday_profile_weeks=[8], holiday_neighbours=True)
    origin = pd.Timestamp("2018-03-15")
    X = build_features(make_grid(f, cfg), [origin], cfg)
    s0, i0 = f["store_id"].min(), f["item_id"].min()
    s = f[(f.store_id == s0) & (f.item_id == i0)].set_index("date")
    for h in (1, 5, 9):
        r = X[(X.store_id == s0) & (X.item_id == i0) & (X.horizon == h)].iloc[0]
        t = origin + pd.Timedelta(days=h)
        lag0 = 7 * int(np.ceil(h / 7))
        same = [t - pd.Timedelta(days=lag0 + 7 * j) for j in range(8)]
        assert max(same) <= origin
        window = s.loc[origin - pd.Timedelta(days=55):origin, "y"]
        share = s.loc[same, "y"].mean() / window.mean()
        assert np.isclose(r["dow_share_8"], share, rtol=1e-5)
        last7 = s.loc[origin - pd.Timedelta(days=6):origin, "y"].mean()
        assert np.isclose(r["dow_level_8"] * r["scale"], share * last7, rtol=1e-5)
        assert r["holiday_prev"] == s.loc[t - pd.Timedelta(days=1), "is_holiday"]
        assert r["holiday_next"] == s.loc[t + pd.Timedelta(days=1), "is_holiday"]

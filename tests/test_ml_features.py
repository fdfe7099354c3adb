"""Leakage guard: no feature may use data dated after the forecast origin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.forecast import small_frame

from ml.config import ForecastConfig
from ml.features import LeakageError, build_features, check_no_lookahead, make_grid, y_at


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


def test_holiday_keys_tell_holidays_apart_and_find_them_in_earlier_years():
    import datetime as dt

    from ml.holidays import EASTER_KEY_BASE, easter, holiday_key, same_holiday

    assert [easter(y) for y in (2016, 2019, 2024)] == [dt.date(2016, 3, 27), dt.date(2019, 4, 21),
                                                       dt.date(2024, 3, 31)]
    good_friday_2019, easter_monday_2019 = dt.date(2019, 4, 19), dt.date(2019, 4, 22)
    assert holiday_key(good_friday_2019) == EASTER_KEY_BASE - 2
    assert holiday_key(easter_monday_2019) == EASTER_KEY_BASE + 1
    assert holiday_key(dt.date(2019, 5, 1)) == 501          # fixed date, although 10 days after Easter
    assert same_holiday(good_friday_2019, 1) == dt.date(2018, 3, 30)
    assert same_holiday(dt.date(2019, 12, 25), 2) == dt.date(2017, 12, 25)
    assert same_holiday(dt.date(2020, 2, 29), 1) == dt.date(2019, 2, 28)


def test_holiday_identity_features():
    """The bakery is shut on Good Friday (every store sells 0) and trades like a Sunday on Easter Monday: the
    features say which holiday it is and what the series sold on it a year before, relative to the weeks before."""
    f = small_frame(start="2017-01-01", end="2018-05-31")
    cfg = ForecastConfig()
    origin = pd.Timestamp("2018-03-27")                      # Good Friday 2018-03-30 is h = 3, Easter Monday h = 6
    X = build_features(make_grid(f, cfg), [origin], cfg)
    s0, i0 = f["store_id"].min(), f["item_id"].min()
    s = f[(f.store_id == s0) & (f.item_id == i0)].set_index("date")["y"]
    rows = X[(X.store_id == s0) & (X.item_id == i0)].set_index("horizon")
    from ml.holidays import EASTER_KEY_BASE

    assert rows.loc[3, "holiday_key"] == EASTER_KEY_BASE - 2
    assert rows.loc[3, "holiday_last"] == 0.0                # shut on Good Friday 2017 (2017-04-14)
    last_easter_monday = pd.Timestamp("2017-04-17")
    before = s.loc[last_easter_monday - pd.Timedelta(days=28):last_easter_monday - pd.Timedelta(days=1)].mean()
    assert np.isclose(rows.loc[6, "holiday_last"], s.loc[last_easter_monday] / before, rtol=1e-5)
    assert rows.loc[1, ["holiday_key", "holiday_last", "holiday_sunday"]].isna().all()   # an ordinary day
    assert rows.loc[6, "holiday_sunday"] >= 0


def test_mart_rows_become_the_neutral_frame_sorted_with_shifts_inside_each_series():
    # The pandas reference the numpy build replaced (a whole-frame sort and groupby shifts), on shuffled rows of
    # series of different lengths, one shorter than the promotion lag: the same frame, value for value.
    from ml.data import NEUTRAL_KEYS, neutral_from_mart

    rng = np.random.default_rng(7)
    parts = []
    for store_id, item_id, n in [(1, 10, 30), (1, 11, 5), (2, 10, 20), (3, 12, 1)]:
        parts.append(pd.DataFrame({
            "store_id": store_id, "item_id": item_id,
            "date": pd.date_range("2024-01-01", periods=n),
            "y": np.where(np.arange(n) < n - 3, rng.poisson(5, n), np.nan).astype(float),
            "is_stockout": rng.integers(0, 2, n).astype("float32"),
            "is_public_holiday": rng.integers(0, 2, n).astype("float32"),
            "is_school_holiday": rng.integers(0, 2, n).astype("float32"),
            "rain_mm": rng.random(n), "temperature_c": rng.normal(10, 5, n),
            "is_promotion": rng.integers(0, 2, n).astype("float32"), "unit_price": rng.random(n) + 1,
        }))
    raw = pd.concat(parts, ignore_index=True).sample(frac=1, random_state=3).reset_index(drop=True)

    ref = raw.sort_values(NEUTRAL_KEYS).reset_index(drop=True)
    hol, promo = ref["is_public_holiday"].astype(float), ref["is_promotion"].astype(float)
    expected = pd.DataFrame({
        "store_id": ref["store_id"], "item_id": ref["item_id"], "date": ref["date"], "y": ref["y"],
        "is_stockout": ref["is_stockout"].astype(bool), "is_holiday": hol,
        "is_holiday_next2days": (hol.groupby([ref["store_id"], ref["item_id"]]).shift(-1).fillna(0)
                                 + hol.groupby([ref["store_id"], ref["item_id"]]).shift(-2).fillna(0)).clip(upper=1),
        "is_school_holiday": ref["is_school_holiday"].astype(float), "rain": ref["rain_mm"],
        "temperature": ref["temperature_c"], "promotion": promo,
        "promotion_lastweek": promo.groupby([ref["store_id"], ref["item_id"]]).shift(7),
        "price": ref["unit_price"],
    })
    pd.testing.assert_frame_equal(neutral_from_mart(raw.copy()), expected)

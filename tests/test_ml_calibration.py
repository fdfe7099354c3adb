"""Interval calibration (ml.calibration): levels hit on held-out residuals, censoring, groups known at the origin,
and the calibration travelling with the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.forecast import fast_config, small_frame

from ml.calibration import apply_calibration, day_error_correlation, fit_calibration, series_groups, store_closed
from ml.features import make_grid


def _rows(n: int, seed: int, spread: float, stockout_share: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Forecasts whose P10/P90 are `spread` times too narrow (spread > 1) for normal demand around P50."""
    rng = np.random.default_rng(seed)
    p50 = rng.uniform(5, 50, n)
    sd = 0.2 * p50
    y = np.maximum(p50 + sd * rng.normal(size=n), 0)
    z = 1.2816
    P = pd.DataFrame({"y": y, "p50": p50, "p10": p50 - z * sd / spread, "p90": p50 + z * sd / spread,
                      "horizon": rng.integers(1, 8, n), "stockout": rng.random(n) < stockout_share})
    groups = pd.DataFrame({"volume": np.where(p50 < 20, "mid", "high"), "intermittency": "smooth",
                           "history": "long"}, index=P.index)
    return P, groups


def _coverage(P: pd.DataFrame) -> float:
    return float(((P["y"] >= P["p10"]) & (P["y"] <= P["p90"])).mean())


@pytest.mark.parametrize("spread", [2.0, 0.5])          # intervals too narrow, then too wide
def test_recalibrated_intervals_hit_their_levels_on_new_rows(spread):
    cal = fit_calibration(*_rows(4000, 0, spread))
    P, groups = _rows(4000, 1, spread)
    assert not 0.75 <= _coverage(P) <= 0.85
    C = apply_calibration(P, groups, cal)
    assert 0.77 <= _coverage(C) <= 0.83
    assert 0.07 <= (C["y"] < C["p10"]).mean() <= 0.13 and 0.07 <= (C["y"] > C["p90"]).mean() <= 0.13
    pd.testing.assert_series_equal(C["p50"], P["p50"])                  # the point forecast is untouched
    assert (C["p10"] >= 0).all() and (C["p10"] <= C["p50"]).all() and (C["p50"] <= C["p90"]).all()


def test_stockout_days_are_left_out_of_the_residuals():
    P, groups = _rows(3000, 2, 1.0, stockout_share=0.3)
    # censored sales: far below demand on stock-out days; counting them would stretch P10 downwards
    P.loc[P["stockout"], "y"] = 0.0
    with_censored = fit_calibration(P.assign(stockout=False), groups)
    cal = fit_calibration(P, groups)
    clean = fit_calibration(P[~P["stockout"]], groups[~P["stockout"]])
    assert cal["global"] == clean["global"]
    assert with_censored["global"]["lo"] > 1.5 * cal["global"]["lo"]


def test_stockout_days_count_with_their_imputed_demand():
    """The stock sells out on the high days: dropping them measures the upper tail without its high days (P90 too
    narrow); their imputed demand (ml.censoring) puts them back."""
    P, groups = _rows(6000, 4, 1.0)
    rng = np.random.default_rng(5)
    stock = P["p50"] + 0.5 * (P["p90"] - P["p50"]) * rng.uniform(0.5, 1.5, len(P))
    demand = P["y"].copy()
    P["stockout"] = demand > stock
    P["y"] = np.minimum(demand, stock)
    truth = fit_calibration(P.assign(y=demand, stockout=False), groups)["global"]
    dropped = fit_calibration(P, groups)["global"]
    imputed = fit_calibration(P.assign(y_imputed=np.where(P["stockout"], demand, np.nan)), groups)["global"]
    assert P["stockout"].mean() > 0.2
    assert dropped["hi"] < 0.8 * truth["hi"]                 # the bias the imputed demand removes
    assert imputed == truth
    # a stock-out day without an imputed demand (too few ordinary days to impute from) is left out, not taken as is
    unimputed = P.assign(y_imputed=np.where(P["stockout"], P["y"], np.nan))
    assert fit_calibration(unimputed, groups)["global"] == dropped


def test_zero_width_intervals_of_intermittent_series_get_a_width():
    rng = np.random.default_rng(3)
    n = 3000
    y = (rng.random(n) < 0.3).astype(float)               # sells 1 on 30 % of days, forecast 0 / 0 / 0
    P = pd.DataFrame({"y": y, "p10": 0.0, "p50": 0.0, "p90": 0.0, "horizon": 1})
    groups = pd.DataFrame({"volume": "low", "intermittency": "intermittent", "history": "long"}, index=P.index)
    C = apply_calibration(P, groups, fit_calibration(P, groups))
    assert (C["p90"] >= 1).all() and _coverage(C) == 1.0


def test_a_store_that_sells_nothing_on_its_closing_days_is_closed_but_slow_movers_are_not():
    """Store 2 of the bakery sells nothing on Christmas, New Year's Day, Good Friday; a thinned copy of it (1 % of
    the units: a store of slow movers) has days without a sale that are quiet, not closed."""
    f = small_frame(stores=(2,))
    grid = make_grid(f, fast_config())
    closed = store_closed(grid)
    day = pd.Series(grid.dates)
    sold = pd.DataFrame(np.nan_to_num(grid.y_raw)).sum(axis=0).to_numpy()
    later = (day >= day[0] + pd.Timedelta(days=60)).to_numpy() & ~np.isnan(grid.y_raw).all(axis=0)
    assert closed[:, later].any()
    assert (closed == closed[0]).all()                                 # a store is closed for all its series
    np.testing.assert_array_equal(closed[0, later], sold[later] == 0)   # every day without a sale, after 8 weeks
    assert {"2017-12-25", "2018-01-01", "2018-03-30"} <= set(day[closed[0]].dt.strftime("%Y-%m-%d"))

    thin = f.assign(y=np.random.default_rng(0).binomial(f["y"].fillna(0).astype(int), 0.01).astype(float))
    thin_grid = make_grid(thin, fast_config())
    quiet = (np.nan_to_num(thin_grid.y_raw).sum(axis=0) == 0) & ~np.isnan(thin_grid.y_raw).all(axis=0)
    assert quiet.sum() > 20 and not store_closed(thin_grid).any()


def test_closed_days_are_left_out_of_the_residuals():
    """A closed day (forecast 0, sold 0) sits inside any interval: counted, a quarter of such days would let the
    open days' P90 fall short of its level."""
    P, groups = _rows(3000, 6, 2.0)
    shut = np.random.default_rng(7).random(len(P)) < 0.25
    P.loc[shut, ["y", "p10", "p50", "p90"]] = 0.0
    P["closed"] = shut
    cal = fit_calibration(P, groups)
    clean = fit_calibration(P[~shut], groups[~shut])
    assert cal["global"] == clean["global"]
    assert fit_calibration(P.drop(columns="closed"), groups)["global"]["hi"] < 0.9 * cal["global"]["hi"]
    C = apply_calibration(P[~shut], groups[~shut], cal)
    assert 0.07 <= (C["y"] > C["p90"]).mean() <= 0.13


def test_groups_use_only_the_history_up_to_the_origin():
    f = small_frame(stores=(2,))
    cfg = fast_config()
    rows = pd.DataFrame({"store_id": 2, "item_id": sorted(f["item_id"].unique()), "origin": pd.Timestamp("2018-03-15")})
    a = series_groups(make_grid(f, cfg), rows)
    scrambled = f.copy()
    after = scrambled["date"] > "2018-03-15"
    scrambled.loc[after, "y"] = 0.0
    b = series_groups(make_grid(scrambled, cfg), rows)
    pd.testing.assert_frame_equal(a, b)
    assert set(a["history"]) == {"long"} and set(a["intermittency"]) == {"smooth"}


def test_the_day_to_day_error_correlation_is_measured_within_each_forecast_run():
    """Errors of one run (series x origin) share a run-level part: the correlation of its days is found whatever
    the order of the rows, and runs are never paired with each other."""
    rng = np.random.default_rng(7)
    runs = pd.MultiIndex.from_product([[1, 2], range(100, 130), pd.date_range("2019-03-01", periods=20)],
                                      names=["store_id", "item_id", "origin"]).to_frame(index=False)
    P = runs.merge(pd.DataFrame({"horizon": range(1, 8)}), how="cross")
    shared = rng.normal(size=len(runs)).repeat(7)          # the run's level error, on each of its 7 days
    P["p50"], P["p10"], P["p90"] = 20.0, 20.0 - 2 * 1.2816, 20.0 + 2 * 1.2816
    P["y"] = 20.0 + 1.2816 * (shared + rng.normal(size=len(P)))
    rho, pairs = day_error_correlation(P)
    assert pairs == len(runs) * (6 + 5) and 0.4 < rho < 0.6          # half the variance is the run's
    assert day_error_correlation(P.sample(frac=1.0, random_state=1)) == pytest.approx((rho, pairs))
    independent = P.assign(y=20.0 + 1.2816 * rng.normal(size=len(P)))
    assert day_error_correlation(independent)[0] < 0.05


def test_group_labels_are_shared_strings():
    """A chain's backtest has ~6 M rows: a label string per row held about 1 GB for three words."""
    f = small_frame(stores=(2,))
    rows = pd.DataFrame({"store_id": 2, "item_id": sorted(f["item_id"].unique()), "origin": pd.Timestamp("2018-03-15")})
    groups = series_groups(make_grid(f, fast_config()), pd.concat([rows] * 50, ignore_index=True))
    for c in ("volume", "intermittency", "history"):
        assert len({id(v) for v in groups[c]}) == groups[c].nunique()


def test_the_calibration_travels_with_the_model_and_is_applied_at_prediction(tmp_path):
    from ml.model import ForecastModel
    from ml.predict import fit_calibrated

    f = small_frame(stores=(2, 3), start="2017-11-01", end="2018-06-30")
    m = fit_calibrated(fast_config(origin_stride=4, apply_interval_calibration=True), f, "2018-05-31")
    assert m.calibration is not None and m.calibration["n_rows"] > 0
    loaded = ForecastModel.load(m.save(tmp_path / "m.pkl"))
    assert loaded.calibration == m.calibration
    origins = [pd.Timestamp("2018-06-05")]
    cal = loaded.predict(f, origins)
    loaded.calibration = None
    raw = loaded.predict(f, origins)
    # fitted and stored always; applied as the configuration says (the default does)
    m.cfg = m.cfg.model_copy(update={"apply_interval_calibration": False})
    pd.testing.assert_frame_equal(m.predict(f, origins), raw)
    pd.testing.assert_series_equal(cal["p50"], raw["p50"])
    assert not np.allclose(cal["p90"], raw["p90"])


def test_the_stored_backtest_metrics_score_the_days_the_stores_were_open():
    from ml.predict import backtest_and_fit, fit_after_backtest

    f = small_frame(stores=(2, 3), start="2017-11-01", end="2018-06-30")
    cfg = fast_config(origin_stride=4)
    _, every_day = fit_after_backtest(cfg, f, "2018-05-31")
    assert every_day["closed"].sum() > 0                 # Ascension, Whit Monday, Corpus Christi in the window
    _, P, m = backtest_and_fit(f, "2018-05-31", cfg)
    assert not P["closed"].any() and m["n"] == len(P) == (~every_day["closed"]).sum()


def test_a_short_warehouse_history_shortens_the_backtest_instead_of_failing():
    from ml.calibration import BACKTEST_DAYS, backtest_days
    from ml.predict import fit_calibrated

    f = small_frame(stores=(2,), start="2018-02-01", end="2018-04-28")          # 87 days, a new warehouse
    assert backtest_days(f, "2018-04-28") == 86 - 56 - 2 < BACKTEST_DAYS     # 86 days after the first
    assert backtest_days(small_frame(stores=(2,)), "2018-06-30") == BACKTEST_DAYS
    m = fit_calibrated(fast_config(), f, "2018-04-28")
    assert m.calibration is not None and m.calibration["n_rows"] > 0


def test_a_backtest_model_trained_on_too_little_history_does_not_calibrate_the_final_one():
    """On a young warehouse the backtest model sees a fraction of the final model's history: its errors speak
    for its own want of data. The calibration is stored, not applied."""
    from ml.calibration import MIN_BACKTEST_TRAIN_SHARE, backtest_train_share
    from ml.predict import fit_calibrated

    young = small_frame(stores=(2,), start="2018-02-01", end="2018-04-28")
    assert backtest_train_share(young, "2018-04-28", 28) == pytest.approx(2 / 30)
    assert backtest_train_share(small_frame(stores=(2,)), "2018-06-30", 56) > MIN_BACKTEST_TRAIN_SHARE
    m = fit_calibrated(fast_config(), young, "2018-04-28")
    assert m.cfg.apply_interval_calibration and m.calibration is not None
    assert m.calibration["representative"] is False and not m.applies_calibration
    origins = [pd.Timestamp("2018-04-28")]
    stored = m.calibration
    applied = m.predict(young, origins)
    m.calibration = None
    pd.testing.assert_frame_equal(applied, m.predict(young, origins))
    m.calibration = dict(stored, representative=True)
    assert m.applies_calibration

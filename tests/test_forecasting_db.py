"""The warehouse side of forecasting (replenish.forecasting, embedded Postgres): the registry's promotion rule,
the weekly training's stored backtest metrics and calibration, idempotent prediction writes, and artifacts loaded
from their stored path."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from replenish import migrations
from replenish.forecasting.registry import current_model, register_model


@pytest.fixture(scope="module")
def eng():
    from replenish.database import engine

    e = engine()
    migrations.upgrade(e)
    with e.begin() as c:
        c.execute(text("truncate forecast.models, forecast.forecasts, forecast.backtest_metrics"))
    yield e
    # The fake versions point at no artifact: leave no "current" model behind for other tests.
    with e.begin() as c:
        c.execute(text("truncate forecast.models, forecast.forecasts, forecast.backtest_metrics"))


def _reg(e, v, wape):
    return register_model(e, v, {"lr": 0.05}, {"horizons": [1]}, "2016-01-02", "2018-12-31",
                          {"wape": wape, "bias": 0.0}, f"/nonexistent/{v}.pkl")


def test_new_model_becomes_current_only_if_it_beats_the_current_wape(eng):
    assert _reg(eng, "v1", 0.20) is True            # first model
    assert current_model(eng).version == "v1"
    assert _reg(eng, "v2", 0.25) is False           # worse
    assert _reg(eng, "v3", 0.20) is False           # equal is not better
    assert current_model(eng).version == "v1"
    assert _reg(eng, "v4", 0.18) is True
    with eng.connect() as c:
        assert c.execute(text("select count(*) from forecast.models where is_current")).scalar() == 1
        assert c.execute(text("select version from forecast.models where is_current")).scalar() == "v4"


def test_predict_for_date_is_idempotent_per_origin(eng):
    from support.forecast import small_frame

    from replenish.forecasting.predict import predict_for_date

    f = small_frame(stores=(2,), start="2018-04-01", end="2018-06-14")
    f.loc[f.date > "2018-05-31", "y"] = float("nan")
    n1 = predict_for_date(eng, "2018-05-31", "run-a", automation_blocked=True, frame=f)
    n2 = predict_for_date(eng, "2018-05-31", "run-b", automation_blocked=False, frame=f)
    assert n1 == n2 == 3 * 14
    with eng.connect() as c:
        rows = pd.read_sql(text("select * from forecast.forecasts where origin_date = '2018-05-31'"), c)
    assert len(rows) == n2 and set(rows.run_id) == {"run-b"}
    assert (rows.p50 > 0).all() and rows.is_flagged.all()   # artifact missing -> fallback -> flagged


def test_train_and_register_stores_backtest_metrics_per_series_and_horizon(eng):
    from support.forecast import fast_config, small_frame

    from ml.backtest import series_horizon_metrics
    from replenish.forecasting.train import train_and_register

    f = small_frame(stores=(2, 3), start="2017-11-01", end="2018-05-31")
    res = train_and_register(eng, "2018-05-31", cfg=fast_config(origin_stride=4), frame=f)
    v = res["version"]
    with eng.connect() as c:
        bm = pd.read_sql(text("select * from forecast.backtest_metrics where model_version = :v"), c, params={"v": v})
        by_h = pd.read_sql(text("select * from forecast.v_backtest_metrics_by_horizon where model_version = :v"
                                " order by horizon"), c, params={"v": v})
        stored = c.execute(text("select backtest_metrics from forecast.models where version = :v"), {"v": v}).scalar()
    assert len(bm) == 2 * 3 * 7 and set(bm.horizon) == set(range(1, 8))     # 2 stores x 3 items x h=1..7
    assert bm[["store_id", "item_id", "horizon"]].duplicated().sum() == 0
    assert ((bm.coverage >= 0) & (bm.coverage <= 1)).all()
    # the additive sums roll up exactly to the overall metrics stored with the model
    m = res["metrics"]
    assert bm.sum_abs_err.sum() / bm.sum_y.sum() == pytest.approx(m["wape"])
    assert bm.n_covered.sum() / bm.n.sum() == pytest.approx(m["coverage"])
    assert (bm.sum_p50.sum() - bm.sum_y.sum()) / bm.sum_y.sum() == pytest.approx(m["bias"])
    assert bm.sum_pinball.sum() / bm.sum_y.sum() / 3 == pytest.approx(m["pinball"])
    assert list(by_h.horizon) == list(range(1, 8))
    # the interval calibration fitted on this backtest is stored with the version and in its artifact
    from ml.model import ForecastModel

    with eng.connect() as c:
        cal = c.execute(text("select calibration from forecast.models where version = :v"), {"v": v}).scalar()
    assert cal is not None and cal["n_rows"] > 0
    assert ForecastModel.load(res["artifact_path"]).calibration == cal
    # the artifact is in the settings' models folder, registered by its absolute path
    from pathlib import Path

    from replenish.settings import get_settings

    assert Path(res["artifact_path"]).is_absolute() and Path(res["artifact_path"]).parent == get_settings().models_dir
    assert by_h.wape.to_list() == pytest.approx([stored["by_horizon"][str(h)]["wape"] for h in range(1, 8)])
    # idempotent: registering the same version again (a retried task) replaces, never duplicates
    rows = series_horizon_metrics(pd.DataFrame({"store_id": [2, 2], "item_id": [1, 1], "horizon": [1, 1],
                                                "y": [10.0, 0.0], "p10": [5.0, 0.0], "p50": [8.0, 1.0],
                                                "p90": [12.0, 2.0]}))
    for _ in range(2):
        register_model(eng, v, {}, {}, None, None, m, res["artifact_path"], series_metrics=rows)
    with eng.connect() as c:
        again = pd.read_sql(text("select * from forecast.backtest_metrics where model_version = :v"), c,
                            params={"v": v})
        assert c.execute(text("select count(*) from forecast.models where version = :v"), {"v": v}).scalar() == 1
    assert len(again) == 1 and again.n.iloc[0] == 2 and again.wape.iloc[0] == pytest.approx(3 / 10)


def test_series_metrics_keep_their_missing_values_through_copy(eng):
    # A series that sold nothing has no WAPE/bias/pinball, one without quantiles no coverage: NULLs, not 0 or NaN.
    full = {"store_id": 1, "item_id": 10, "horizon": 1, "n": 7, "sum_y": 35.0, "sum_p50": 33.5, "sum_abs_err": 4.25,
            "sum_pinball": 2.0, "n_covered": 6, "wape": 4.25 / 35, "bias": -1.5 / 35, "pinball": 2.0 / 35,
            "coverage": 6 / 7}
    empty = {**full, "item_id": 11, "sum_y": 0.0, "sum_pinball": None, "n_covered": None, "wape": None, "bias": None,
             "pinball": None, "coverage": None}
    register_model(eng, "v-metrics", {}, {}, "2016-01-02", "2018-12-31", {"wape": 0.3}, "/nonexistent/m.pkl",
                   series_metrics=[full, empty])
    with eng.connect() as c:
        rows = c.execute(text("select item_id, n, n_covered, wape, coverage, sum_abs_err from forecast.backtest_metrics"
                              " where model_version = 'v-metrics' order by item_id")).all()
    assert [tuple(r) for r in rows] == [(10, 7, 6, 4.25 / 35, 6 / 7, 4.25), (11, 7, None, None, None, 4.25)]


def test_a_registered_artifact_loads_from_its_stored_path_wherever_it_is(eng, tmp_path):
    # Artifacts registered before they moved to Settings.models_dir (cache_dir/models) keep serving: prediction
    # loads the path stored in forecast.models, never one rebuilt from the settings.
    from support.forecast import fast_config, small_frame

    from ml.model import ForecastModel
    from replenish.forecasting.predict import predict_for_date

    f = small_frame(stores=(2,), start="2017-11-01", end="2018-06-14")
    f.loc[f.date > "2018-05-31", "y"] = float("nan")
    path = ForecastModel(fast_config()).fit(f, end_date="2018-05-31").save(tmp_path / "cache" / "models" / "old.pkl")
    assert register_model(eng, "v-old-place", {}, {}, None, None, {"wape": 0.0}, str(path)) is True
    predict_for_date(eng, "2018-05-31", "run-old", automation_blocked=False, frame=f)
    with eng.connect() as c:
        rows = pd.read_sql(text("select model_version, is_flagged from forecast.forecasts"
                                " where origin_date = '2018-05-31'"), c)
    assert len(rows) == 3 * 7 and set(rows.model_version) == {"v-old-place"} and not rows.is_flagged.any()


def test_drift_is_named_only_where_the_figures_leave_their_limits():
    from replenish.forecasting.accuracy import MIN_ROWS, drift_reasons

    ok = {"rows": 1000, "censored_rows": 300, "wape": 0.26, "wape_backtested_rows": 0.20, "backtest_wape": 0.18,
          "bias": 0.04, "coverage_low": 0.62, "coverage_high": 0.86}
    # h = 8..14 are not in the backtest: the WAPE over all horizons is not held against it
    assert drift_reasons(ok, []) == []          # a range that reaches the band is not drift
    narrow = {**ok, "coverage_high": 0.66}
    assert any("too narrow" in r for r in drift_reasons(narrow, []))
    wide = {**ok, "coverage_low": 0.93, "coverage_high": 0.97}
    assert any("too wide" in r for r in drift_reasons(wide, []))
    assert any("below what sold" in r for r in drift_reasons({**ok, "bias": -0.15}, []))
    # an over-forecast read through many sold-out days may be their shortfall: named only when few sold out
    assert drift_reasons({**ok, "bias": 0.15}, []) == []
    assert any("above what sold" in r for r in drift_reasons({**ok, "bias": 0.15, "censored_rows": 50}, []))
    assert any("backtest" in r for r in drift_reasons({**ok, "wape_backtested_rows": 0.25}, []))
    assert drift_reasons({**narrow, "rows": MIN_ROWS - 1}, []) == []      # too few rows to say
    service = [{"item_id": 101, "days_with_sales": 500, "stockout_days": 210, "stockout_share": 0.42, "asked": 0.30},
               {"item_id": 109, "days_with_sales": 500, "stockout_days": 30, "stockout_share": 0.06, "asked": 0.05},
               {"item_id": 110, "days_with_sales": 20, "stockout_days": 19, "stockout_share": 0.95, "asked": 0.30}]
    assert drift_reasons(ok, service) == ["item 101 sold out on 42% of its days with sales, its ordering asks for 30%"]
    # with where the stock came from, in the causes' order whatever the record's (jsonb sorts its keys)
    causes = {"as_proposed": {"days_with_sales": 100, "stockout_days": 31, "stockout_share": 0.31},
              "no_delivery": {"days_with_sales": 5, "stockout_days": 5, "stockout_share": 1.0},
              "ordered_outside": {"days_with_sales": 395, "stockout_days": 174, "stockout_share": 0.4405}}
    assert drift_reasons(ok, [{**service[0], "causes": causes}]) == [
        "item 101 sold out on 42% of its days with sales, its ordering asks for 30%; by where the stock came from, "
        "sold out: nothing delivered within its shelf life 5 of 5 days (100%), ordered outside Replenish 174 of 395 "
        "days (44%), sent as Replenish proposed 31 of 100 days (31%)"]


def test_stored_forecasts_are_kept_for_the_retention_days(eng):
    """The nightly run deletes the forecasts whose target date is more than forecast_retention_days before D, one
    target date at a time; a re-run deletes nothing more, and a shorter retention deletes more."""
    import datetime as dt

    from replenish.forecasting.predict import prune_forecasts

    d = dt.date(1990, 6, 30)   # before every other test's forecasts in this database: they are not pruned here
    targets = [d - dt.timedelta(days=k) for k in (500, 401, 400, 399, 10, 0)]
    with eng.begin() as c:
        c.execute(text("insert into forecast.forecasts (store_id, item_id, origin_date, target_date, horizon, p10, p50,"
                       " p90, model_version, is_flagged, run_id) values (1, 10, :o, :t, 1, 1, 2, 3, 'v', false, 'r')"),
                  [{"o": t - dt.timedelta(days=1), "t": t} for t in targets])
    try:
        assert prune_forecasts(eng, d, 400) == 2
        assert prune_forecasts(eng, d, 400) == 0
        with eng.connect() as c:
            kept = c.execute(text("select target_date from forecast.forecasts where run_id = 'r' order by 1")).scalars()
            assert list(kept) == sorted(targets[2:])
        assert prune_forecasts(eng, d, 35) == 2
    finally:
        with eng.begin() as c:
            c.execute(text("delete from forecast.forecasts where run_id = 'r'"))

"""Censored-demand treatment and short-history fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
from support.forecast import fast_config, small_frame

from ml.backtest import metrics, simulate_stockouts
from ml.model import ForecastModel, item_profile_fallback


def test_masking_stockouts_removes_the_downward_bias():
    """Censor 30% of days (sales capped at 50% of demand). Scored against the true demand, the model trained on
    censored sales without the treatment under-forecasts; masking stock-outs stays close to the model trained on
    clean data."""
    f = small_frame(stores=(2, 3, 4, 5))
    cens = simulate_stockouts(f, share=0.3, cap=0.5, seed=1)
    truth = cens[["store_id", "item_id", "date", "true_y"]].rename(columns={"date": "target_date"})
    res = {}
    for name, data, mask in (("clean", f, True), ("masked", cens, True), ("naive", cens, False)):
        cfg = fast_config(quantiles=[0.5], mask_stockouts=mask, origin_stride=2)
        data = data.drop(columns=[c for c in ("true_y",) if c in data])
        m = ForecastModel(cfg).fit(data, end_date="2018-04-30")
        P = m.predict(data, pd.date_range("2018-05-01", "2018-06-20", freq="3D"))
        P = P.drop(columns="y").merge(truth, on=["store_id", "item_id", "target_date"]).rename(columns={"true_y": "y"})
        res[name] = metrics(P)
    naive_shift = res["naive"]["bias"] - res["clean"]["bias"]
    masked_shift = res["masked"]["bias"] - res["clean"]["bias"]
    assert naive_shift < -0.08                             # trained on censored sales: under-forecasts demand
    assert abs(masked_shift) < abs(naive_shift) / 2
    assert res["masked"]["wape"] < res["naive"]["wape"]


def test_short_history_series_get_a_positive_item_profile_forecast():
    f = small_frame(stores=(2, 3))
    origin = pd.Timestamp("2018-05-31")
    new = f[(f.store_id == 3) & (f.date > origin - pd.Timedelta(days=5)) & (f.date <= origin + pd.Timedelta(days=7))]
    new = new.assign(store_id=99)            # a store opened 5 days before the origin
    fut = new[new.date > origin].assign(item_id=555, y=np.nan)          # an item never sold anywhere
    full = pd.concat([f, new, fut], ignore_index=True)
    full.loc[full.date > origin, "y"] = np.nan
    m = ForecastModel(fast_config(origin_stride=4)).fit(f, end_date="2018-05-15")
    P = m.predict(full, [origin])
    assert len(P) == full[["store_id", "item_id"]].drop_duplicates().shape[0] * 7
    assert np.isfinite(P[["p10", "p50", "p90"]].to_numpy()).all()
    assert (P[["p10", "p50", "p90"]] > 0).all().all()
    assert (P["p10"] <= P["p50"]).all() and (P["p50"] <= P["p90"]).all()
    newp = P[P.store_id == 99]
    assert newp["is_fallback"].all() and not P[P.store_id == 2]["is_fallback"].any()
    # the scaled profile is in the right ballpark of the new store's level
    lvl = new[new.date <= origin]["y"].mean()
    p = newp[newp.item_id != 555]["p50"].mean()
    assert 0.3 * lvl < p < 3 * lvl
    # no history at all (empty frame) still gives positive numbers
    empty = item_profile_fallback(f.iloc[:0], P.head(3), fast_config())
    assert (empty > 0).all().all()


def test_model_saved_before_a_new_feature_option_loads_with_the_option_off():
    from ml.config import ForecastConfig
    from ml.model import _stored_config

    old = ForecastConfig().model_dump()
    for name in ("weekday_profile_weeks", "holiday_neighbours", "holiday_identity", "holiday_years"):
        old.pop(name)
    cfg = _stored_config(old)
    assert cfg.weekday_profile_weeks == [] and cfg.holiday_neighbours is False and cfg.holiday_identity is False
    assert _stored_config(ForecastConfig().model_dump()) == ForecastConfig()


def test_predicting_many_origins_in_chunks_gives_the_same_rows(monkeypatch):
    import ml.model

    frame = small_frame()
    end = pd.to_datetime(frame.loc[frame["y"].notna(), "date"]).max()
    model = ForecastModel(fast_config()).fit(frame, end_date=end - pd.Timedelta(days=10))
    origins = pd.date_range(end - pd.Timedelta(days=9), end - pd.Timedelta(days=1))
    keys = ["store_id", "item_id", "origin", "horizon"]
    whole = model.predict(frame, origins, range(1, 8)).sort_values(keys).reset_index(drop=True)
    monkeypatch.setattr(ml.model, "PREDICT_CHUNK_ROWS", 1)  # one origin a chunk
    chunked = model.predict(frame, origins, range(1, 8)).sort_values(keys).reset_index(drop=True)
    assert len(whole) == len(chunked) > 0 and whole["origin"].nunique() == len(origins)
    pd.testing.assert_frame_equal(whole, chunked)

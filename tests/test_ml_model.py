"""Censored-demand treatment and short-history fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
from support.forecast import fast_config, small_frame

from ml.backtest import metrics, simulate_stockouts
from ml.model import ForecastModel, item_profile_fallback


def _scores_against_demand(runs, truth) -> dict[str, dict]:
    """P50 of models trained on each (name, frame, config overrides), scored against the true demand in May-June."""
    res = {}
    for name, data, kw in runs:
        cfg = fast_config(quantiles=[0.5], origin_stride=2, **kw)
        data = data.drop(columns=[c for c in ("true_y",) if c in data])
        m = ForecastModel(cfg).fit(data, end_date="2018-04-30")
        P = m.predict(data, pd.date_range("2018-05-01", "2018-06-20", freq="3D"))
        P = P.drop(columns="y").merge(truth, on=["store_id", "item_id", "target_date"]).rename(columns={"true_y": "y"})
        res[name] = metrics(P)
    return res


def _censor_at_stock(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Stock-outs as a shop has them: each day's stock is the mean of the last 4 same weekdays' demand times a
    random factor in [0.9, 1.5]; a day whose demand is above it sells the stock and is flagged. The high days
    are the censored ones (about 22 % of days, 11 % of the units)."""
    rng = np.random.default_rng(seed)
    f = frame.sort_values(["store_id", "item_id", "date"]).reset_index(drop=True)
    dow = pd.to_datetime(f["date"]).dt.dayofweek
    usual = f.groupby(["store_id", "item_id", dow])["y"].transform(
        lambda s: s.shift(1).rolling(4, min_periods=1).mean())
    stock = np.ceil(usual.fillna(f["y"]) * rng.uniform(0.9, 1.5, len(f)))
    hit = f["y"].notna() & (f["y"] > stock)
    out = f.assign(true_y=f["y"], is_stockout=hit)
    out.loc[hit, "y"] = stock[hit]
    return out


def test_dropping_stockouts_removes_the_bias_of_censoring_that_does_not_depend_on_demand():
    """Censor 30% of random days (sales capped at 50% of demand). Scored against the true demand, the model trained
    on censored sales without the treatment under-forecasts; dropping the stock-out days (``impute_stockouts``
    off) stays close to the model trained on clean data: the days left are a fair sample."""
    f = small_frame(stores=(2, 3, 4, 5))
    cens = simulate_stockouts(f, share=0.3, cap=0.5, seed=1)
    truth = cens[["store_id", "item_id", "date", "true_y"]].rename(columns={"date": "target_date"})
    res = _scores_against_demand((("clean", f, {}), ("dropped", cens, {"impute_stockouts": False}),
                                  ("naive", cens, {"mask_stockouts": False})), truth)
    naive_shift = res["naive"]["bias"] - res["clean"]["bias"]
    dropped_shift = res["dropped"]["bias"] - res["clean"]["bias"]
    assert naive_shift < -0.08                             # trained on censored sales: under-forecasts demand
    assert abs(dropped_shift) < abs(naive_shift) / 2


def test_imputing_stockouts_beats_dropping_them_when_the_high_days_sell_out():
    """Where stock-outs happen because demand exceeded the stock, the days that did not sell out are the low ones:
    dropping the others biases the model lower than training on the censored sales (selection), while imputing
    their demand (the default) comes closest to the model trained on clean data, with the lowest error."""
    f = small_frame(stores=(2, 3, 4, 5))
    cens = _censor_at_stock(f, seed=1)
    truth = cens[["store_id", "item_id", "date", "true_y"]].rename(columns={"date": "target_date"})
    res = _scores_against_demand((("clean", f, {}), ("imputed", cens, {}),
                                  ("dropped", cens, {"impute_stockouts": False}),
                                  ("naive", cens, {"mask_stockouts": False})), truth)
    shift = {k: res[k]["bias"] - res["clean"]["bias"] for k in ("imputed", "dropped", "naive")}
    assert shift["dropped"] < shift["naive"] < shift["imputed"] < 0
    assert res["imputed"]["wape"] < res["dropped"]["wape"] - 0.02
    assert res["imputed"]["wape"] <= res["naive"]["wape"] + 0.005


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

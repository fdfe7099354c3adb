"""Stock-out days: demand estimated above the sales (ml.censoring), not dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd
from support.forecast import fast_config, small_frame

from ml.backtest import metrics
from ml.censoring import impute_stockouts
from ml.model import ForecastModel


def test_imputed_demand_recovers_the_mean_and_spread_the_stock_cut_off():
    rng = np.random.default_rng(1)
    demand = rng.normal(100, 30, (200, 400)).clip(0)
    sales, sold_out = np.minimum(demand, 110), demand >= 110          # a third of the days sell out
    feat, target = impute_stockouts(sales, sold_out)
    assert 0.3 < sold_out.mean() < 0.4
    assert sales[~sold_out].mean() < 85                                 # masking keeps the low days only
    assert abs(feat.mean() - demand.mean()) < 2 and abs(target.mean() - demand.mean()) < 2
    assert abs(np.quantile(target, 0.9) - np.quantile(demand, 0.9)) < 6
    assert (feat >= sales).all() and (target >= sales).all()
    assert (feat[~sold_out] == sales[~sold_out]).all()                 # other days untouched


def test_imputation_reads_no_day_after_the_one_it_imputes():
    rng = np.random.default_rng(2)
    sales = rng.poisson(50, (20, 120)).astype(float)
    sold_out = rng.random((20, 120)) < 0.3
    feat, _ = impute_stockouts(sales, sold_out)
    later = sales.copy()
    later[:, 80:] = rng.poisson(500, (20, 40))
    feat_later, _ = impute_stockouts(later, sold_out)
    assert np.array_equal(feat[:, :80], feat_later[:, :80])


def test_a_window_of_sold_out_days_keeps_the_sales():
    sales = np.full((1, 30), 40.0)
    feat, target = impute_stockouts(sales, np.ones((1, 30), bool))
    assert (feat == 40).all() and (target == 40).all()
    sales[0, 5] = np.nan
    feat, _ = impute_stockouts(sales, np.ones((1, 30), bool))
    assert np.isnan(feat[0, 5])


def test_imputing_stockouts_removes_the_bias_of_dropping_the_high_days():
    """Stock at the usual demand of the weekday (the mean of its last 4 weeks, as a simple store orders): the high
    days sell out. Scored against the true demand, dropping the stock-out days under-forecasts; imputing them stays
    close to the model trained on clean data."""
    f = small_frame(stores=(2, 3, 4, 5)).sort_values(["store_id", "item_id", "date"]).reset_index(drop=True)
    f["dow"] = pd.to_datetime(f["date"]).dt.dayofweek
    usual = f.groupby(["store_id", "item_id", "dow"])["y"].transform(
        lambda s: s.rolling(4, min_periods=1).mean().shift())
    stock = np.ceil(usual.fillna(f["y"]) * 1.1)
    f = f.drop(columns="dow")
    cens = f.assign(y=np.minimum(f["y"], stock), is_stockout=f["y"] > stock)
    truth = f[["store_id", "item_id", "date", "y"]].rename(columns={"date": "target_date"})
    res = {}
    for name, data, impute in (("clean", f, True), ("dropped", cens, False), ("imputed", cens, True)):
        cfg = fast_config(quantiles=[0.5], impute_stockouts=impute, origin_stride=2)
        m = ForecastModel(cfg).fit(data, end_date="2018-04-30")
        P = m.predict(data, pd.date_range("2018-05-01", "2018-06-20", freq="3D"))
        res[name] = metrics(P.drop(columns="y").merge(truth, on=["store_id", "item_id", "target_date"]))
    assert 0.2 < cens["is_stockout"].mean() < 0.5
    assert res["dropped"]["bias"] - res["clean"]["bias"] < -0.08
    assert abs(res["imputed"]["bias"] - res["clean"]["bias"]) < abs(res["dropped"]["bias"] - res["clean"]["bias"]) / 2
    assert res["imputed"]["wape"] < res["dropped"]["wape"]

"""Small, fast subsets of the bakery panel for the tests."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _panel_frame():
    from ml.data import panel_to_frame
    from replenish.data.bakery import load_panel

    return panel_to_frame(load_panel())


def small_frame(stores=(2, 3, 4), start="2017-09-01", end="2018-06-30"):
    f = _panel_frame()
    f = f[f["store_id"].isin(stores) & (f["date"] >= start) & (f["date"] <= end)]
    return f.reset_index(drop=True).copy()


def fast_config(**kw):
    from ml.config import ForecastConfig, LightGBMParams

    return ForecastConfig(lgbm=LightGBMParams(num_boost_round=60, num_leaves=15, min_data_in_leaf=50),
                          horizons=list(range(1, 8)), **kw)

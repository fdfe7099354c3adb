"""Adapters into the neutral frame: store_id, item_id, date, y, is_stockout, <drivers> (ml.config.DRIVER_COLUMNS).

Rows with a missing y (future dates) carry only the known-in-advance drivers. The frames come from a panel (the
bakery's, :func:`panel_to_frame`) or from the warehouse's marts (rows read by ``replenish.forecasting.inputs``,
:func:`neutral_from_mart`); nothing here reads a database or a file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ml.config import DRIVER_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

NEUTRAL_KEYS = ["store_id", "item_id", "date"]


def panel_to_frame(panel: pd.DataFrame) -> pd.DataFrame:
    """Bakery panel -> neutral frame. The weekday label of the source is wrong and is ignored."""
    import numpy as np
    import pandas as pd

    f = pd.DataFrame({
        "store_id": panel["store_id"].astype("int64"),
        "item_id": panel["item_id"].astype("int64"),
        "date": pd.to_datetime(panel["date"]).astype("datetime64[ns]"),
        "y": panel["demand"].astype(float),
        "is_stockout": panel["is_stockout"].astype(bool) if "is_stockout" in panel else False,
        "is_holiday": panel["is_holiday"].astype(float),
        "is_holiday_next2days": panel["is_holiday_next2days"].astype(float),
        "is_school_holiday": panel["is_school_holiday"].astype(float),
        "rain": panel["rain"].astype(float),
        "temperature": panel["temperature"].astype(float),
        "promotion": panel["promotion_currentweek"].astype(float),
        "promotion_lastweek": panel["promotion_lastweek"].astype(float),
        "price": np.nan,
    })
    return f.sort_values(NEUTRAL_KEYS).reset_index(drop=True)[NEUTRAL_KEYS + ["y", "is_stockout"] + DRIVER_COLUMNS]


def compact_frame(f: pd.DataFrame) -> pd.DataFrame:
    """The frame in compact types, in place, one column at a time: int32 ids, float32 drivers, bool stock-out.
    The grid stores drivers as float32 anyway (ml.features.make_grid), so the features are the same; y stays
    float64. At the chain's 22 M rows this is 1.2 GB instead of 2.1 GB."""
    import numpy as np

    for c in ("store_id", "item_id"):
        if c in f and len(f) and f[c].min() >= np.iinfo(np.int32).min and f[c].max() <= np.iinfo(np.int32).max:
            f[c] = f[c].to_numpy().astype(np.int32)
    for c in DRIVER_COLUMNS:
        if c in f and f[c].dtype == np.float64:
            f[c] = f[c].to_numpy().astype(np.float32)
    if "is_stockout" in f and f["is_stockout"].dtype != bool:
        f["is_stockout"] = f["is_stockout"].fillna(0).to_numpy().astype(bool)
    return f


def neutral_from_mart(raw: pd.DataFrame) -> pd.DataFrame:
    """Mart rows in any order (the columns ``replenish.forecasting.inputs`` reads from ``marts.fct_daily_demand``
    and ``fct_demand_drivers``) -> the neutral frame sorted by series and date. Built column by column in numpy and
    consumed from ``raw`` as it goes: a whole-frame sort, group shifts and a final column selection each copied the
    chain's 22 M rows, and the peak was five times the frame."""
    import numpy as np
    import pandas as pd

    date = pd.to_datetime(raw["date"]).to_numpy().astype("datetime64[ns]")
    store, item = raw["store_id"].to_numpy(np.int64), raw["item_id"].to_numpy(np.int64)
    order = np.lexsort((date, item, store))
    store, item, date = store[order], item[order], date[order]
    new_series = np.ones(len(order), dtype=bool)
    new_series[1:] = (store[1:] != store[:-1]) | (item[1:] != item[:-1])
    series = np.cumsum(new_series)

    def take(name: str, dtype) -> np.ndarray:
        values = raw.pop(name).to_numpy()[order]
        return values.astype(dtype, copy=False)

    def shifted(values: np.ndarray, periods: int) -> np.ndarray:
        # values ``periods`` rows later (negative: earlier) in the same series, NaN past its ends (groupby.shift)
        out = np.full(len(values), np.nan)
        if periods > 0:
            same = series[periods:] == series[:-periods]
            out[:-periods][same] = values[periods:][same]
        else:
            same = series[-periods:] == series[:periods]
            out[-periods:][same] = values[:periods][same]
        return out

    hol = take("is_public_holiday", float)
    promo = take("is_promotion", float)
    f = pd.DataFrame({
        "store_id": store, "item_id": item, "date": date, "y": take("y", float),
        "is_stockout": take("is_stockout", bool),
        "is_holiday": hol,
        "is_holiday_next2days": np.minimum(np.nan_to_num(shifted(hol, 1)) + np.nan_to_num(shifted(hol, 2)), 1),
        "is_school_holiday": take("is_school_holiday", float), "rain": take("rain_mm", float),
        "temperature": take("temperature_c", float), "promotion": promo,
        "promotion_lastweek": shifted(promo, -7), "price": take("unit_price", float),
    }, copy=False)
    assert list(f.columns) == NEUTRAL_KEYS + ["y", "is_stockout"] + DRIVER_COLUMNS
    return f

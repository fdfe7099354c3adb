"""Seeded synthetic retail panel in the neutral frame (ml.data), for the scale and calibration benches.

Default size is the M5 panel: 10 stores x 3,049 items = 30,490 series, 2 years of daily sales, plus
``future_days`` rows per series that carry only the known-in-advance drivers (y = NaN).
What makes it realistic enough to exercise the model: weekly and yearly seasonality, a per-series trend,
many slow movers (intermittent, mostly zeros), public holidays (shops mostly closed, busier the days before),
school holidays per region, weather, per-item prices with promotion weeks (discount -> uplift), and stock-out
spells whose sales are censored (flagged ``is_stockout``). Generated store by store with compact dtypes so the
frame itself stays ~1 GiB at M5 size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ml.config import DRIVER_COLUMNS
from ml.holidays import easter, public_holidays

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class _Items:
    """Per item: category weekly profile, level (log-normal: many slow movers), yearly seasonality, price and
    the item-specific school-holiday effect and price elasticity."""
    weekly: np.ndarray
    level: np.ndarray
    amp: np.ndarray
    phase: np.ndarray
    price: np.ndarray
    school: np.ndarray
    elasticity: np.ndarray


def _items(n_items: int, rng: np.random.Generator) -> _Items:
    cat = rng.integers(0, 3, n_items)
    weekly = np.array([[0.9, 0.85, 0.85, 0.9, 1.05, 1.3, 1.15],      # food: weekend peak
                       [1.0, 0.95, 0.95, 1.0, 1.05, 1.1, 0.95],      # household
                       [0.8, 0.8, 0.85, 0.9, 1.1, 1.4, 1.15]])       # hobbies
    # one statement per field, in this order: the order of the draws is part of what a seed produces
    item_weekly = weekly[cat] * rng.lognormal(0, 0.05, (n_items, 7))
    item_level = rng.lognormal(np.log(1.0), 1.3, n_items)
    item_amp = rng.uniform(0, 0.25, n_items)
    item_phase = rng.uniform(0, 2 * np.pi, n_items)
    item_price = np.round(rng.lognormal(np.log(4.0), 0.8, n_items), 2)
    item_school = rng.normal(0, 0.1, n_items)
    item_elasticity = rng.uniform(0.5, 2.0, n_items)
    return _Items(item_weekly, item_level, item_amp, item_phase, item_price, item_school, item_elasticity)


def _school_holidays(dates: pd.DatetimeIndex, region: int) -> np.ndarray:
    """Summer (a week later per region), Easter, Christmas and autumn holidays."""
    import pandas as pd

    school = np.zeros(len(dates), dtype=np.float32)
    for y in range(dates[0].year, dates[-1].year + 1):
        e = pd.Timestamp(easter(y))
        ranges = [(pd.Timestamp(y, 7, 1) + pd.Timedelta(weeks=region), 6 * 7),
                  (e - pd.Timedelta(days=7), 14), (pd.Timestamp(y, 12, 23), 15), (pd.Timestamp(y, 10, 20), 10)]
        for a, n in ranges:
            school[(dates >= a) & (dates < a + pd.Timedelta(days=n))] = 1.0
    return school


def _promotions(items: _Items, t: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """~4% of item-weeks per store, Monday-aligned weeks, 15-30% off: (promo, promo last week, price, uplift)."""
    n_items = len(items.level)
    week = t // 7
    promo_w = rng.uniform(size=(n_items, week.max() + 1)) < 0.04
    promo = promo_w[:, week].astype(np.float32)
    promo_last = np.zeros_like(promo)
    promo_last[:, 7:] = promo[:, :-7]
    disc = rng.uniform(0.15, 0.30, (n_items, 1))
    price = (items.price[:, None] * (1 - disc * promo) * (1 + 0.02 * (t[None, :] // 182))).astype(np.float32)
    uplift = (1 - disc * promo) ** (-items.elasticity[:, None] * 2)
    return promo, promo_last, price, uplift


def _censored_sales(lam: np.ndarray, days: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Noisy demand around ``lam`` and the sales it becomes: (sales, is_stockout); NaN / False after ``days``."""
    n_items, D = lam.shape
    # gamma-Poisson (negative binomial) noise; slow movers become intermittent
    demand = rng.poisson(lam * rng.gamma(4.0, 0.25, lam.shape)).astype(np.float32)
    # stock-out spells: start with prob 0.4% per day, last 1-4 days; sales are censored to a fraction
    so = np.zeros(lam.shape, dtype=bool)
    starts = rng.uniform(size=lam.shape) < 0.004
    for k in range(4):
        so[:, k:] |= starts[:, : D - k] & (rng.uniform(size=(n_items, D - k)) < 0.8 ** k)
    sales = np.where(so, np.floor(demand * rng.uniform(0, 0.7, lam.shape)), demand).astype(np.float32)
    sales[:, days:] = np.nan
    so[:, days:] = False
    return sales, so


def _store_frame(s: int, dates: pd.DatetimeIndex, days: int, items: _Items, is_hol: np.ndarray,
                 hol_next2: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Store ``s`` (0-based): all its items' rows."""
    import pandas as pd

    n_items, D = len(items.level), len(dates)
    t = np.arange(D)
    doy = dates.dayofyear.to_numpy()
    dow = dates.dayofweek.to_numpy()
    store_mult = rng.lognormal(0, 0.35)
    school = _school_holidays(dates, s % 3)
    temp = (10 + 9 * np.sin(2 * np.pi * (doy - 110) / 365.25) + rng.normal(0, 3, D)).astype(np.float32)
    rain = (rng.gamma(0.4, 4.0, D) * (rng.uniform(size=D) < 0.45)).astype(np.float32)
    weather = 1 + 0.01 * (temp - 10) - 0.01 * np.minimum(rain, 20)
    promo, promo_last, price, uplift = _promotions(items, t, rng)

    trend = np.exp(rng.normal(0, 0.15, (n_items, 1)) * t[None, :] / 365)
    yearly = 1 + items.amp[:, None] * np.sin(2 * np.pi * doy[None, :] / 365.25 + items.phase[:, None])
    lam = (items.level[:, None] * store_mult * items.weekly[:, dow] * yearly * trend * uplift * weather[None, :]
           * (1 + items.school[:, None] * school[None, :]) * (1 - 0.8 * is_hol[None, :])
           * (1 + 0.25 * hol_next2[None, :] * (1 - is_hol[None, :])))
    del trend, yearly, uplift
    sales, so = _censored_sales(lam, days, rng)
    del lam

    n = n_items * D
    return pd.DataFrame({
        "store_id": np.full(n, s + 1, dtype=np.int32),
        "item_id": np.repeat(np.arange(1, n_items + 1, dtype=np.int32), D),
        "date": np.tile(dates.to_numpy(), n_items),
        "y": sales.ravel(),
        "is_stockout": so.ravel(),
        "is_holiday": np.tile(is_hol, n_items),
        "is_holiday_next2days": np.tile(hol_next2, n_items),
        "is_school_holiday": np.tile(school, n_items),
        "rain": np.tile(rain, n_items),
        "temperature": np.tile(temp, n_items),
        "promotion": promo.ravel(),
        "promotion_lastweek": promo_last.ravel(),
        "price": price.ravel(),
    })


def synthetic_panel(n_stores: int = 10, n_items: int = 3049, days: int = 730, future_days: int = 14,
                    start: str = "2016-01-01", seed: int = 0) -> pd.DataFrame:
    """Columns: store_id, item_id (int32), date, y (float32, NaN for the future rows), is_stockout, drivers
    (float32, ml.config.DRIVER_COLUMNS). Sorted by store, item, date."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=days + future_days, freq="D")
    hol_days = public_holidays(range(dates[0].year, dates[-1].year + 1))
    is_hol = np.array([d.date() in hol_days for d in dates], dtype=np.float32)
    hol_next2 = np.clip(np.r_[is_hol[1:], 0] + np.r_[is_hol[2:], 0, 0], 0, 1).astype(np.float32)
    items = _items(n_items, rng)
    # store by store: only one store's day x item arrays are alive at a time
    frames = [_store_frame(s, dates, days, items, is_hol, hol_next2, rng) for s in range(n_stores)]
    out = pd.concat(frames, ignore_index=True)
    return out[["store_id", "item_id", "date", "y", "is_stockout"] + DRIVER_COLUMNS]

"""One typed forecast configuration, shared by training and prediction (features are declared once)."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, Field

# Known-in-advance drivers, named in the neutral frame (see ml.data).
DRIVER_COLUMNS = [
    "is_holiday", "is_holiday_next2days", "is_school_holiday", "rain", "temperature",
    "promotion", "promotion_lastweek", "price",
]


class LightGBMParams(BaseModel):
    learning_rate: float = 0.08
    num_leaves: int = 31
    min_data_in_leaf: int = 200
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    num_boost_round: int = 200
    # the P10/P90 models: fewer rounds at a proportionally higher learning rate (they set the interval, not the
    # P50 WAPE); on the validation folds 60 rounds gave the same WAPE and coverage for ~30% less CPU. None = all.
    interval_boost_round: int | None = 60
    num_threads: int = 2
    seed: int = 7
    max_bin: int = 127
    verbose: int = -1


class ForecastConfig(BaseModel):
    """Everything that defines the features and the model; stored as JSON with every model version."""

    horizons: list[int] = Field(default_factory=lambda: list(range(1, 15)))
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9])
    # target-derived features, all relative to the origin o (never data dated > o)
    last_value: bool = True
    rolling_windows: list[int] = Field(default_factory=lambda: [7, 28])   # mean of y over (o-w, o]
    rolling_std_window: int = 28
    same_weekday_counts: list[int] = Field(default_factory=lambda: [1, 4, 8])  # last k same weekdays of target, <= o
    year_ago_window: int = 7            # mean of y around t-364 (centred, ends <= o for h <= 360)
    scale_window: int = 28              # target / features are divided by mean over this window at o
    # the target weekday's share over the last w weeks (mean of the w last same weekdays <= o / mean of the 7w days
    # ending at o) and that share times the last 7-day mean (a level x weekday forecast, in units of scale);
    # the long windows estimate each series' weekday pattern precisely (validation h=1-2 WAPE 0.189 -> 0.185)
    weekday_profile_weeks: list[int] = Field(default_factory=lambda: [8, 26, 52])
    # known-in-advance features at the target date
    calendar: list[str] = Field(default_factory=lambda: ["dow", "dom", "month", "doy", "week"])
    drivers: list[str] = Field(default_factory=lambda: list(DRIVER_COLUMNS))
    # drivers that are not known in advance: read from the weather forecast issued at the origin for the target
    # date (ml.weather), never the observed value of the target date (docs/benchmark-protocol.md). A stored model
    # without this field keeps reading them at the target date (ml.model._stored_config), as it was trained.
    weather_drivers: list[str] = Field(default_factory=lambda: ["rain", "temperature"])
    # public holiday the day before and the day after the target date (known in advance, like the drivers)
    holiday_neighbours: bool = True
    # which holiday the target date is (Easter-linked offset or month-day, see ml.holidays) and the series' demand on
    # its last `holiday_years` occurrences relative to the weeks before them: a bakery is shut on Good Friday and
    # Christmas but trades like a Sunday on Easter Monday; one `is_holiday` flag cannot tell them apart
    holiday_identity: bool = True
    holiday_years: int = 2
    categoricals: list[str] = Field(default_factory=lambda: ["store_id", "item_id"])
    # censored demand: stock-out days' sales are not taken as their demand. With impute_stockouts their demand is
    # estimated (ml.censoring: a Tobit fit over the series' last 8 same weekdays) for the features and the target;
    # without, they are dropped from the training loss and from target-derived features, which keeps only the days
    # that did not sell out, the low ones (simulator: the 1-day items sold out on 43 % of days for a 30 % target)
    mask_stockouts: bool = True
    impute_stockouts: bool = True
    # short history: series with fewer observed days than this in the last 56 days use the item profile
    min_history_days: int = 21
    # training sample: every `origin_stride`-th origin of the training window
    origin_stride: int = 3
    # bounded memory: at most this many training rows (seeded subsample of the origin x series x horizon rows). The
    # bakery panel has ~0.6 M and is untouched; without a bound a 30,000-series chain needed over 23 GB in training.
    max_train_rows: int | None = 4_000_000
    # sample weights: loss in units (WAPE-aligned) instead of relative error; recency half-life in days
    weight_by_scale: bool = False
    recency_halflife_days: float | None = None
    # The backtest's interval calibration (ml.calibration) is fitted and stored with every model version and applied
    # to its forecasts: raw quantile boosters cover 0.69-0.79 on few, short or driver-less panels (the validation
    # table, docs/benchmarks.md). Off gives the boosters' raw P10/P90 (the simulator's --raw-intervals).
    apply_interval_calibration: bool = True
    lgbm: LightGBMParams = Field(default_factory=LightGBMParams)

    def fingerprint(self) -> str:
        return hashlib.sha1(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()[:10]

    @property
    def max_horizon(self) -> int:
        return max(self.horizons)

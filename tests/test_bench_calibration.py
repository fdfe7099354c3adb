"""benchmarks.calibration.rolling_calibration: recalibrating at each origin on what has matured by then follows a
drift that a calibration fitted once before the test window does not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.calibration import rolling_calibration
from ml.calibration import apply_calibration, fit_calibration


def _forecasts(origins: pd.DatetimeIndex, sd_of_day, seed: int) -> pd.DataFrame:
    """Raw P10/P90 for a spread of 0.2 x P50, one row per origin and horizon 1..7 of 30 series; the demand's
    spread on each target day is sd_of_day(target)."""
    rng = np.random.default_rng(seed)
    rows = []
    for o in origins:
        for h in range(1, 8):
            target = o + pd.Timedelta(days=h)
            p50 = rng.uniform(20, 40, 30)
            y = np.maximum(p50 + sd_of_day(target) * p50 * rng.normal(size=30), 0)
            rows.append(pd.DataFrame({"origin": o, "target_date": target, "horizon": h, "y": y, "p50": p50,
                                      "p10": p50 * (1 - 1.2816 * 0.2), "p90": p50 * (1 + 1.2816 * 0.2)}))
    P = pd.concat(rows, ignore_index=True)
    return P.assign(volume="high", intermittency="smooth", history="long")


def _coverage(P: pd.DataFrame) -> float:
    return float(((P["y"] >= P["p10"]) & (P["y"] <= P["p90"])).mean())


def test_rolling_recalibration_follows_a_drift_the_backtest_did_not_see():
    start = pd.Timestamp("2019-01-01")
    drift = pd.Timestamp("2019-03-01")                 # the demand's spread doubles from here on

    def sd(day):
        return 0.2 if day < drift else 0.4

    backtest = _forecasts(pd.date_range(start - pd.Timedelta(days=63), start - pd.Timedelta(days=8), freq="2D"),
                          sd, 0)
    test = _forecasts(pd.date_range(start, "2019-04-30", freq="2D"), sd, 1)
    static = apply_calibration(test, test, fit_calibration(backtest, backtest))
    rolled = rolling_calibration(test, pd.concat([backtest, test], ignore_index=True))
    late = test["origin"] >= drift + pd.Timedelta(days=28)  # four weeks after the drift began
    assert _coverage(static[late]) < 0.6                  # the once-fitted calibration keeps the old width
    assert 0.74 <= _coverage(rolled[late]) <= 0.86
    pd.testing.assert_series_equal(rolled["p50"], test["p50"])
    # nothing from after the origin: demand of later targets changes nothing at an origin
    origin = pd.Timestamp("2019-03-15")
    later = test.assign(y=np.where(test["target_date"] > origin, test["y"] * 100, test["y"]))
    moved = rolling_calibration(test, pd.concat([backtest, later], ignore_index=True))
    at = test["origin"] <= origin
    pd.testing.assert_frame_equal(moved[at], rolled[at])
    assert not moved[~at].equals(rolled[~at])


def test_retrained_models_each_forecast_only_the_origins_after_their_training_end():
    """--retrain-days: as production trains weekly, each model serves the origins up to the next training."""
    from support.forecast import fast_config, small_frame

    from benchmarks.calibration import _fits

    spec = {"frame": small_frame(stores=(2,), start="2017-09-01", end="2018-06-30"), "weather": None,
            "train_end": "2018-05-31", "test_start": "2018-06-01", "test_end": "2018-06-20"}
    fits = _fits(spec, fast_config(origin_stride=6), stride=2, retrain_days=7)
    ends = [pd.Timestamp("2018-05-31") + pd.Timedelta(days=7 * i) for i in range(len(fits))]
    assert len(fits) == 3
    for (cal, backtest, P), end in zip(fits, ends, strict=True):
        assert P["origin"].min() > end and P["origin"].max() <= end + pd.Timedelta(days=7)
        assert pd.to_datetime(backtest["target_date"]).max() <= end          # its calibration saw nothing later
        assert cal["n_rows"] > 0
    served = pd.concat([P for _, _, P in fits])["origin"].drop_duplicates()
    assert list(served) == list(pd.date_range("2018-06-01", "2018-06-19", freq="2D"))


def _poisson_quantile(lam: float, level: float) -> float:
    """The smallest k with P(Y <= k) >= level for Y ~ Poisson(lam)."""
    k, p, cdf = 0, np.exp(-lam), np.exp(-lam)
    while cdf < level:
        k += 1
        p *= lam / k
        cdf += p
    return float(k)


def test_true_quantiles_of_counts_meet_the_target_as_a_forecast_of_counts_and_too_narrow_ones_do_not():
    """Slow movers sell 0 on most days: the true P10 is 0 and its days lie on the bound, so inclusive coverage is
    above 0.85 for the exact distribution; judged as counts it is in the target, and a P90 of 0 is not."""
    from benchmarks.calibration import _summary, in_target

    rng = np.random.default_rng(3)
    lam = 0.8
    y = rng.poisson(lam, 20_000).astype(float)
    p10, p50, p90 = (_poisson_quantile(lam, q) for q in (0.1, 0.5, 0.9))
    P = pd.DataFrame({"y": y, "p10": p10, "p50": p50, "p90": p90, "p10_raw": p10, "p90_raw": p90})
    true = _summary(P)
    assert p10 == 0 and true["coverage"] > 0.85 and true["at_p10"] > 0.4
    assert not in_target(true) and in_target(true, discrete=True)
    narrow = _summary(P.assign(p90=0.0))
    assert narrow["coverage"] < 0.75 and not in_target(narrow, discrete=True)
    # a continuous forecast has no days on its bounds: the two judgements agree
    smooth = _summary(pd.DataFrame({"y": rng.normal(30, 5, 20_000), "p10": 30 - 1.2816 * 5, "p50": 30.0,
                                    "p90": 30 + 1.2816 * 5}).assign(p10_raw=lambda d: d.p10, p90_raw=lambda d: d.p90))
    assert in_target(smooth) and in_target(smooth, discrete=True) and smooth["coverage_strict"] == smooth["coverage"]

"""ml.report.run_report_html on synthetic frames (no database); replenish.forecasting.report writes it."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from ml.report import NO_MATURED, run_report_html
from replenish.forecasting.report import write_run_report

BD = date(2019, 4, 29)


def _actuals(days: int = 28) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for s in (1, 2):
        for i in (10, 11, 12):
            for d in pd.date_range(end=pd.Timestamp(BD), periods=days, freq="D"):
                rows.append({"store_id": s, "item_id": i, "demand_date": d.date(),
                             "units_sold": float(rng.poisson(20 * s + i)), "is_stockout": bool(rng.random() < 0.1)})
    return pd.DataFrame(rows)


def _forecasts(origins, version="v1", flagged=False) -> pd.DataFrame:
    rows = []
    for o in origins:
        for s in (1, 2):
            for i in (10, 11, 12):
                for h in range(1, 15):
                    rows.append({"store_id": s, "item_id": i, "origin_date": o, "target_date": o + pd.Timedelta(days=h),
                                 "horizon": h, "p10": 15.0, "p50": 20.0 * s + i, "p90": 40.0 * s + i,
                                 "model_version": version, "is_flagged": flagged, "run_id": "r1"})
    df = pd.DataFrame(rows)
    df["origin_date"] = df["origin_date"].dt.date
    df["target_date"] = df["target_date"].dt.date
    return df


MODELS = pd.DataFrame([{"version": "v1", "is_current": True, "backtest_wape": 0.321,
                        "backtest_metrics": {"wape": 0.321, "coverage": 0.79}, "train_start": date(2016, 1, 1),
                        "train_end": date(2018, 12, 31)}])


def _imgs(text: str) -> int:
    return text.count('<img src="data:image/png;base64,')


def test_run_report_without_matured_forecasts(tmp_path):
    fc = _forecasts([pd.Timestamp(BD)], version=None, flagged=True)
    out = write_run_report(None, BD, tmp_path / "r" / "run.html", n_series=2, forecasts=fc, actuals=_actuals(),
                           models=MODELS)
    text = out.read_text()
    assert _imgs(text) == 1                          # series plot only
    assert NO_MATURED in text.replace("&#x27;", "'")
    assert "no matured forecasts" in text.lower()
    assert "2019-04-29" in text and "84 of 84" in text and "item-profile fallback" in text
    assert "0.321" in text                           # current model's backtest metrics
    assert "<td>2</td>\n      <td>12</td>" in text      # largest series listed (store 2, item 12)


@pytest.mark.parametrize("n_series", [1, 3])
def test_run_report_with_matured_forecasts(n_series):
    origins = list(pd.date_range(pd.Timestamp(BD) - pd.Timedelta(days=20), pd.Timestamp(BD), freq="D"))
    fc = _forecasts(origins)
    text = run_report_html(BD, fc, _actuals(), MODELS.iloc[0:0], n_series=n_series)
    assert _imgs(text) == 3                          # series + error by horizon + error by store
    assert "no matured forecasts" not in text.lower()
    assert "By horizon" in text and "By store" in text and "coverage" in text
    assert "0 of " in text and "v1" in text
    assert "No current model" in text


def test_run_report_without_forecasts_for_origin():
    empty = _forecasts([pd.Timestamp(BD)]).iloc[0:0]
    text = run_report_html(BD, empty, _actuals(), MODELS)
    assert "No forecasts found" in text and "no matured forecasts" in text.lower()
    assert _imgs(text) == 1                          # actuals of the largest series still plotted


def test_the_report_says_how_the_intervals_reach_the_forecasts():
    """The data team reads off the run report whether P10/P90 were calibrated, and why not."""
    from ml.report import intervals_text

    on = {"apply_interval_calibration": True}
    models = MODELS.assign(feature_config=[on], calibration=[{"n_rows": 17850, "representative": True}])
    assert "calibrated on the backtest (17850 residuals" in run_report_html(BD, _forecasts([pd.Timestamp(BD)]),
                                                                            _actuals(), models)
    young = {"n_rows": 120, "representative": False, "backtest_train_share": 0.067}
    assert "too little history (7% of the final model" in intervals_text(on, young)
    assert "apply_interval_calibration off" in intervals_text({}, {"n_rows": 5})   # stored before the option
    assert intervals_text(on, None) == "raw quantiles (no calibration stored)"


def test_the_accuracy_verdict_and_its_reasons_head_the_accuracy_section():
    fc, act = _forecasts([pd.Timestamp(BD)]), _actuals()
    verdict = {"status": "drift", "business_date": "2019-04-30", "days": 28,
               "drift": ["item 101 sold out on 42% of its days with sales, its ordering asks for <30%>"]}
    out = run_report_html(BD, fc, act, None, verdict=verdict)
    assert "Verdict (replenish accuracy, target dates in the 28 days up to 2019-04-30): drift" in out
    assert "asks for &lt;30%&gt;" in out and "<30%>" not in out
    assert "Verdict" not in run_report_html(BD, fc, act, None)


def test_days_a_store_was_closed_are_left_out_of_the_accuracy():
    """A store that sold nothing of what its forecasts expected (>= 10 units that day) was closed: its forecasts
    of that day are left out of the pooled figures, by the accuracy mart's rule, and counted."""
    origins = list(pd.date_range(pd.Timestamp(BD) - pd.Timedelta(days=3), pd.Timestamp(BD) - pd.Timedelta(days=1)))
    fc = _forecasts(origins)
    act = _actuals()
    shut = (act["store_id"] == 2) & (act["demand_date"] == BD)
    act.loc[shut, "units_sold"] = 0.0
    text = run_report_html(BD, fc, act, MODELS.iloc[0:0], n_series=1)
    # store 2's three items on BD, forecast from each of the three origins
    assert "9 forecast(s) of a day the store was closed left out" in text
    open_text = run_report_html(BD, fc, _actuals(), MODELS.iloc[0:0], n_series=1)
    assert "0 forecast(s) of a day the store was closed left out" in open_text

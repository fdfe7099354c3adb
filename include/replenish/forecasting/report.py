"""The nightly run's forecast report: what it shows is read from the warehouse here and rendered by ``ml.report``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


def _read(engine, sql: str, params: dict) -> pd.DataFrame:
    import pandas as pd
    from sqlalchemy import text

    with engine.connect() as conn:
        return pd.read_sql(text(sql), conn, params=params)


# the earlier origins' h=1 P50 of the plotted series: a month of every series at chain size is ~12 M forecasts, and
# their scores are the accuracy mart's (_SCORES_SQL), so only horizon 1 is read, by COPY as numbers
_EARLIER_H1_SQL = """
select store_id, item_id, origin_date, target_date, horizon, p10::float8 as p10, p50::float8 as p50,
       p90::float8 as p90
from forecast.forecasts
where horizon = 1 and origin_date < %(bd)s and target_date between %(s)s and %(bd)s
"""
_EARLIER_DTYPES = {"origin_date": "datetime64[ns]", "target_date": "datetime64[ns]", "horizon": "int64",
                   "p10": "float64", "p50": "float64", "p90": "float64"}

# ml.report.score_sums in SQL, on the forecasts the warehouse scored (marts.fct_forecast_accuracy: sold-out days at
# their sales, days a store was closed flagged): pooled, by horizon and by store in one pass (grouping sets)
_SCORES_SQL = """
select case when grouping(horizon) = 0 then 'horizon' when grouping(store_id) = 0 then 'store_id' else 'all' end
           as grouping,
       coalesce(horizon, store_id)                                             as key,
       count(*) filter (where not is_store_closed)                             as n,
       coalesce(sum(units_sold::float8) filter (where not is_store_closed), 0) as sum_y,
       coalesce(sum(p50::float8) filter (where not is_store_closed), 0)        as sum_p50,
       coalesce(sum(abs_error) filter (where not is_store_closed), 0)          as sum_abs_err,
       coalesce(sum(greatest(0.1 * (units_sold - p10), -0.9 * (units_sold - p10))
                    + greatest(0.5 * (units_sold - p50), -0.5 * (units_sold - p50))
                    + greatest(0.9 * (units_sold - p90), -0.1 * (units_sold - p90)))
                filter (where not is_store_closed), 0)::float8                 as sum_pinball,
       count(*) filter (where not is_store_closed and not is_below_p10 and not is_above_p90) as n_covered,
       count(*) filter (where not is_store_closed and is_censored)             as n_censored,
       count(*) filter (where is_store_closed)                                 as n_closed,
       min(origin_date) filter (where not is_store_closed)                     as first_origin,
       max(origin_date) filter (where not is_store_closed)                     as last_origin
from marts.fct_forecast_accuracy
where target_date between :s and :bd
group by grouping sets ((), (horizon), (store_id))
"""


def load_run_inputs(engine: Engine | None, business_date, forecasts: pd.DataFrame | None = None,
                    actuals: pd.DataFrame | None = None, models: pd.DataFrame | None = None,
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """Fetch only what the report needs: the new origin's forecasts and the earlier origins' h=1 forecasts of the
    look-back window, the window's actuals, the current model row, and the matured forecasts' sums as the accuracy
    mart scored them. An input given as a frame is not read; forecasts given as a frame are scored from the frames
    (the sums are then None)."""
    import datetime as dt

    import pandas as pd
    from sqlalchemy.exc import ProgrammingError

    from ml.report import LOOKBACK_DAYS
    from replenish.database import is_missing_relation
    from replenish.forecasting.inputs import read_query_frame

    bd = pd.Timestamp(business_date).date()
    start = bd - dt.timedelta(days=LOOKBACK_DAYS - 1)
    scores = None
    if forecasts is None:
        new = _read(engine,
                    "select store_id, item_id, origin_date, target_date, horizon, p10, p50, p90, model_version,"
                    " is_flagged, run_id from forecast.forecasts where origin_date = :bd", {"bd": bd})
        with engine.connect() as conn:  # type: ignore[union-attr]  # no frame given: the engine is there
            old = read_query_frame(conn, _EARLIER_H1_SQL, {"bd": bd, "s": start}, dtypes=_EARLIER_DTYPES)
        new = new.astype({"origin_date": "datetime64[ns]", "target_date": "datetime64[ns]"})
        forecasts = pd.concat([new, old], ignore_index=True) if len(new) else old
        scores = _read(engine, _SCORES_SQL, {"s": start, "bd": bd})
    if actuals is None:
        actuals = _read(engine,
                        "select store_id, item_id, demand_date, units_sold, is_stockout from marts.fct_daily_demand"
                        " where demand_date between :s and :bd", {"s": start, "bd": bd})
    if models is None:
        try:
            models = _read(engine, "select * from forecast.models where is_current", {})
        except ProgrammingError as exc:  # the registry's table is not migrated yet: report without it
            if not is_missing_relation(exc):
                raise
            log.warning("forecast.models does not exist (yet): the report names no current model")
            models = pd.DataFrame()
    return forecasts, actuals, models, scores


def write_run_report(engine: Engine | None, business_date, path: Path | str, n_series: int = 4, *,
                     forecasts: pd.DataFrame | None = None, actuals: pd.DataFrame | None = None,
                     models: pd.DataFrame | None = None, generated_at=None, verdict: dict | None = None) -> Path:
    """Nightly HTML report for the forecasts of origin ``business_date`` (``ml.report.run_report_html``) written to
    ``path``. Reads ``forecast.forecasts`` (the new origin, and the earlier origins' horizon 1 whose targets fall in
    the 28 days up to ``business_date``), the sums of ``marts.fct_forecast_accuracy`` over those 28 target days,
    ``marts.fct_daily_demand`` (last 28 days) and ``forecast.models`` (current model) through ``engine``; any of
    ``forecasts`` / ``actuals`` / ``models`` given as frames bypasses the database for that input (``engine`` may
    then be None; forecasts given as a frame, with every earlier origin, are scored from the frames). ``verdict``:
    ``replenish accuracy``'s document, its status and reasons shown."""
    from ml.report import run_report_html

    fc, act, current, scores = load_run_inputs(engine, business_date, forecasts, actuals, models)
    text = run_report_html(business_date, fc, act, current, n_series=n_series, generated_at=generated_at,
                           verdict=verdict, scores=scores)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path

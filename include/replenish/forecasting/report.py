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


_EARLIER_SQL = """
select store_id, item_id, origin_date, target_date, horizon, p10::float8 as p10, p50::float8 as p50,
       p90::float8 as p90
from forecast.forecasts
where origin_date < %(bd)s and origin_date >= %(o0)s and target_date between %(s)s and %(bd)s
"""
_EARLIER_DTYPES = {"origin_date": "datetime64[ns]", "target_date": "datetime64[ns]", "horizon": "int64",
                   "p10": "float64", "p50": "float64", "p90": "float64"}


def load_run_inputs(engine: Engine | None, business_date, forecasts: pd.DataFrame | None = None,
                    actuals: pd.DataFrame | None = None, models: pd.DataFrame | None = None,
                    max_horizon: int = 28) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Fetch only what the report needs: forecasts of origins that can hit the look-back window (plus the new
    origin), actuals of the look-back window, the current model row. An input given as a frame is not read."""
    import datetime as dt

    import pandas as pd
    from sqlalchemy.exc import ProgrammingError

    from ml.report import LOOKBACK_DAYS
    from replenish.database import is_missing_relation
    from replenish.forecasting.inputs import read_query_frame

    bd = pd.Timestamp(business_date).date()
    start = bd - dt.timedelta(days=LOOKBACK_DAYS - 1)
    if forecasts is None:
        new = _read(engine,
                    "select store_id, item_id, origin_date, target_date, horizon, p10, p50, p90, model_version,"
                    " is_flagged, run_id from forecast.forecasts where origin_date = :bd", {"bd": bd})
        # the earlier origins' forecasts of the window are scored (a month at chain size: ~12 M rows): numbers only,
        # read by COPY, not one Python object per value (that read alone held ~10 GB)
        with engine.connect() as conn:  # type: ignore[union-attr]  # no frame given: the engine is there
            old = read_query_frame(conn, _EARLIER_SQL, {"bd": bd, "s": start,
                                                        "o0": start - dt.timedelta(days=max_horizon)},
                                   dtypes=_EARLIER_DTYPES)
        new = new.astype({"origin_date": "datetime64[ns]", "target_date": "datetime64[ns]"})
        forecasts = pd.concat([new, old], ignore_index=True) if len(new) else old
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
    return forecasts, actuals, models


def write_run_report(engine: Engine | None, business_date, path: Path | str, n_series: int = 4, *,
                     forecasts: pd.DataFrame | None = None, actuals: pd.DataFrame | None = None,
                     models: pd.DataFrame | None = None, generated_at=None, verdict: dict | None = None) -> Path:
    """Nightly HTML report for the forecasts of origin ``business_date`` (``ml.report.run_report_html``) written to
    ``path``. Reads ``forecast.forecasts`` (new origin + earlier origins whose targets fall in the 28 days up to
    ``business_date``), ``marts.fct_daily_demand`` (last 28 days) and ``forecast.models`` (current model) through
    ``engine``; any of ``forecasts`` / ``actuals`` / ``models`` given as frames bypasses the database for that input
    (``engine`` may then be None). ``verdict``: ``replenish accuracy``'s document, its status and reasons shown."""
    from ml.report import run_report_html

    fc, act, current = load_run_inputs(engine, business_date, forecasts, actuals, models)
    text = run_report_html(business_date, fc, act, current, n_series=n_series, generated_at=generated_at,
                           verdict=verdict)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path

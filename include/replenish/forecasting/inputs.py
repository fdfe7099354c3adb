"""What the forecaster reads from the warehouse: the demand and driver marts as ``ml``'s neutral frame
(:func:`ml.data.neutral_from_mart`), the observed history the short-history fallback needs, the stores and their
series counts that size the nightly's chunks, and the weather forecasts as issued (``ml.weather``).

Everything is read with COPY into Arrow (:func:`read_query_frame`): at chain size (22 M rows) the frames stay near
their own size in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


# Typed in SQL (float8, 0/1 flags) so the rows arrive as numbers, not as one Decimal or bool object per value: a
# 200-store chain's two years are 22 M rows, which as Python objects needed over 20 GB.
_MART_SQL = """
select store_id, item_id, demand_date as date, units_sold::float8 as y,
       coalesce(is_stockout, false)::int as is_stockout,
       is_public_holiday::int as is_public_holiday, is_school_holiday::int as is_school_holiday,
       rain_mm::float8 as rain_mm, temperature_c::float8 as temperature_c, is_promotion::int as is_promotion,
       unit_price::float8 as unit_price
from marts.fct_daily_demand where demand_date <= %(end_date)s
"""
_DRIVERS_SQL = """
select store_id, item_id, driver_date as date, is_public_holiday::int as is_public_holiday,
       is_school_holiday::int as is_school_holiday, rain_mm::float8 as rain_mm, temperature_c::float8 as temperature_c,
       is_promotion::int as is_promotion, unit_price::float8 as unit_price
from marts.fct_demand_drivers where driver_date > %(end_date)s and driver_date <= %(until)s
"""
_DTYPES: dict[Hashable, str] = {"store_id": "int64", "item_id": "int64", "y": "float64", "is_stockout": "float32",
           "is_public_holiday": "float32", "is_school_holiday": "float32", "rain_mm": "float64",
           "temperature_c": "float64", "is_promotion": "float32", "unit_price": "float64"}


def read_query_frame(conn, sql: str, params: dict, dtypes: dict[str, str] | None = None) -> pd.DataFrame:
    """A query's rows as a compact frame: COPY ... TO STDOUT as CSV into a spooled file (psycopg2), parsed by Arrow's
    multi-threaded CSV reader with fixed types (dates straight to datetime64[ns], no second conversion pass;
    ``dtypes`` adds numpy types of other columns, "datetime64[ns]" for more dates). Memory stays near the frame's
    own size whatever the row count."""
    import tempfile

    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types: dict[Hashable, pa.DataType] = {c: pa.from_numpy_dtype(t) for c, t in _DTYPES.items()}
    types["date"] = pa.timestamp("ns")
    for c, t in (dtypes or {}).items():
        types[c] = pa.timestamp("ns") if t == "datetime64[ns]" else pa.from_numpy_dtype(np.dtype(t))
    with conn.connection.driver_connection.cursor() as cur, tempfile.SpooledTemporaryFile(max_size=64 * 2**20) as buf:
        query = cur.mogrify(sql, params).decode()
        cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)", buf)
        buf.seek(0)
        table = pacsv.read_csv(buf, convert_options=pacsv.ConvertOptions(column_types=types))
    # self_destruct frees each Arrow column once converted: the table and the frame are never both whole in memory
    return table.to_pandas(split_blocks=True, self_destruct=True)


def mart_to_frame(engine: Engine, end_date, horizon: int = 14, store_ids: list[int] | None = None) -> pd.DataFrame:
    """Warehouse mart (actuals <= end_date, drivers for end_date+1..end_date+horizon) -> neutral frame; ``store_ids``
    limits it to those stores (every column is per series, so their rows are the same as in the whole frame)."""
    import pandas as pd
    from psycopg2.errors import UndefinedTable

    from ml.data import compact_frame, neutral_from_mart

    end = pd.Timestamp(end_date)
    only = "" if store_ids is None else " and store_id = any(%(store_ids)s)"
    with engine.connect() as conn:
        hist = read_query_frame(conn, _MART_SQL + only, {"end_date": end.date(), "store_ids": store_ids})
        try:
            with conn.begin_nested():
                fut = read_query_frame(conn, _DRIVERS_SQL + only, {
                    "end_date": end.date(), "until": (end + pd.Timedelta(days=horizon)).date(),
                    "store_ids": store_ids})
        except UndefinedTable:  # the drivers mart is not built yet: future rows get no drivers
            log.warning("marts.fct_demand_drivers does not exist (yet): the forecast rows get no drivers")
            fut = pd.DataFrame(columns=[c for c in hist.columns if c not in ("y", "is_stockout")])
    fut["y"] = float("nan")
    fut["is_stockout"] = 0.0
    raw = pd.concat([hist, fut], ignore_index=True)
    del hist, fut
    frame = neutral_from_mart(raw)
    del raw
    release_arrow_memory()
    return compact_frame(frame)


def release_arrow_memory() -> None:
    """Give back what Arrow's allocator keeps of the buffers a read freed (the frames' zero-copy columns, once
    consumed): it would serve Arrow's next allocation, which does not come. After the chain's two-year mart that was
    1.5 GB held through the whole weekly training."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


# The short-history fallback (ml.model.item_profile_fallback) profiles an item over every store: it needs only these
# columns, so it reads them alone, for the items it needs (see ml.predict.fallback_history).
_HISTORY_SQL = """
select store_id, item_id, demand_date as date, units_sold::float8 as y,
       coalesce(is_stockout, false)::int as is_stockout
from marts.fct_daily_demand where demand_date <= %(end_date)s and units_sold is not null
"""


def history_frame(engine: Engine, end_date, item_ids: list[int] | None = None) -> pd.DataFrame:
    """Observed demand (store_id, item_id, date, y, is_stockout) dated <= end_date, of ``item_ids`` (None: all),
    in every store; compact types."""
    import pandas as pd

    from ml.data import compact_frame

    only = "" if item_ids is None else " and item_id = any(%(item_ids)s)"
    with engine.connect() as conn:
        f = read_query_frame(conn, _HISTORY_SQL + only, {"end_date": pd.Timestamp(end_date).date(),
                                                         "item_ids": item_ids})
    return compact_frame(f)


def mart_store_ids(engine: Engine, end_date, horizon: int = 14) -> list[int]:
    """The stores :func:`mart_to_frame` would return rows of (demand dated <= end_date, drivers up to ``horizon``
    days later), sorted: the unpartitioned nightly forecast reads them a chunk at a time."""
    import pandas as pd
    from sqlalchemy import text
    from sqlalchemy.exc import ProgrammingError

    from replenish.database import is_missing_relation

    end = pd.Timestamp(end_date)
    with engine.connect() as conn:
        ids = {int(r[0]) for r in conn.execute(
            text("select distinct store_id from marts.fct_daily_demand where demand_date <= :e"), {"e": end.date()})}
        try:
            with conn.begin_nested():
                ids |= {int(r[0]) for r in conn.execute(text(
                    "select distinct store_id from marts.fct_demand_drivers where driver_date > :e and driver_date"
                    " <= :u"), {"e": end.date(), "u": (end + pd.Timedelta(days=horizon)).date()})}
        except ProgrammingError as exc:  # the drivers mart is not built yet (as in mart_to_frame)
            if not is_missing_relation(exc):
                raise
            log.warning("marts.fct_demand_drivers does not exist (yet): stores are those with demand rows")
    return sorted(ids)


def mart_series_counts(engine: Engine, end_date, store_ids: list[int]) -> dict[int, int]:
    """Series per store with a demand row at ``end_date`` (one indexed date's rows): sizes the nightly's chunks
    before reading them, without a scan of the whole mart."""
    import pandas as pd
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text("select store_id, count(*) from marts.fct_daily_demand where demand_date = :d"
                                 " and store_id = any(:s) group by store_id"),
                            {"d": pd.Timestamp(end_date).date(), "s": [int(s) for s in store_ids]}).all()
    return {int(r[0]): int(r[1]) for r in rows}


_WEATHER_FORECASTS_SQL = """
select store_id, issue_date, weather_date, rain_mm::float8 as rain_mm, temperature_c::float8 as temperature_c
from marts.fct_weather_forecasts where issue_date >= %(start)s and issue_date <= %(end)s
"""


def mart_weather_forecasts(engine: Engine, start, end, store_ids: list[int] | None = None) -> pd.DataFrame | None:
    """Weather forecasts issued on start..end (mart ``fct_weather_forecasts``) in ml.weather's neutral frame; None
    without the mart (the weather features are then missing in training and prediction alike)."""
    import pandas as pd
    from psycopg2.errors import UndefinedTable

    from ml.weather import neutral_forecasts

    only = "" if store_ids is None else " and store_id = any(%(store_ids)s)"
    params: dict = {"start": pd.Timestamp(start).date(), "end": pd.Timestamp(end).date(), "store_ids": store_ids}
    try:
        with engine.connect() as conn:
            # COPY: a 200-store chain's two years of forecasts are ~2 M rows
            raw = read_query_frame(conn, _WEATHER_FORECASTS_SQL + only, params)
    except UndefinedTable:  # the weather forecasts mart is not built yet
        log.warning("marts.fct_weather_forecasts does not exist (yet): no weather forecasts")
        return None
    return neutral_forecasts(raw)

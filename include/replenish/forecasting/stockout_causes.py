"""The nightly's stock-out days by store, item and cause (``forecast.stockout_causes``), for a store's own page.

The verdict the nightly records (``ops.stage_results``) gives each item over every store; a store manager asks about
their own store. The rows that verdict was summed from (store x item x where the stock came from: days with sales,
sold out, the share the ordering asks for) are kept per business date, so ``/service`` reads a store's rows instead
of scoring the chain's forecasts on a page view. :func:`replenish.forecasting.accuracy.service_by_item` sums them
for any set of stores.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from replenish.forecasting.accuracy import CAUSE_ROW_COLUMNS

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection, Engine

TABLE = "forecast.stockout_causes"
KEEP_NIGHTS = 7  # the page reads the latest night; a week back is for the data team's questions


def record(engine: Engine, business_date: dt.date, rows: pd.DataFrame) -> int:
    """Replace ``business_date``'s rows with ``rows`` (:data:`CAUSE_ROW_COLUMNS`) in one transaction (a re-run of
    the night writes them again, never twice) and drop the nights more than KEEP_NIGHTS before it."""
    from sqlalchemy import text

    from replenish.bulk import copy_frame

    with engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {TABLE} WHERE business_date = :d OR business_date < :old"),
                     {"d": business_date, "old": business_date - dt.timedelta(days=KEEP_NIGHTS)})
        frame = rows[list(CAUSE_ROW_COLUMNS)].assign(business_date=business_date)
        return copy_frame(conn, TABLE, frame)


def for_stores(conn: Connection, business_date: dt.date, stores: list[int]) -> pd.DataFrame:
    """The rows of ``stores`` recorded for ``business_date`` (none recorded: no rows)."""
    import pandas as pd
    from sqlalchemy import text

    found = conn.execute(text(f"""SELECT {", ".join(CAUSE_ROW_COLUMNS)} FROM {TABLE}
                                  WHERE business_date = :d AND store_id = ANY(:s)"""),
                         {"d": business_date, "s": list(stores)}).mappings().all()
    return pd.DataFrame(found, columns=list(CAUSE_ROW_COLUMNS))

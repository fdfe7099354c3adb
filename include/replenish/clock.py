"""The platform's one notion of time: the business time zone, "now", business dates, order dates and cutoffs.

Every process (the nightly and dispatch DAGs, the CLI, ``replenish serve``, monitoring, the simulator's
calendar) asks this module, never ``datetime.now()`` or a hard-coded zone.

* **Business date D**: the local day whose sales were just closed. The nightly run for D starts after D
  has ended (its Airflow data interval is D, midnight to midnight in the business zone).
* **Order date**: the nightly for D proposes the orders placed on D + 1 (``order_date_for``), so every
  cutoff it proposes for lies after the run; orders are re-proposed by later runs until they are decided.
* **Now**: the wall clock, unless the database holds a *clock setting* (table ``ops.clock``): a business
  time pinned at a wall-clock instant, which then runs on in real time (or stays frozen). The demo pins
  it to the night after the data's last day, so the nightly, ``order_dispatch``, ``replenish serve`` and
  every CLI command agree on "now" and live cutoff countdowns make sense on 2019 data. The setting lives in
  the warehouse database because that is the one place every process and machine shares.
* **Stamps**: what a buyer or a store reads beside an order (its events, when it was sent, last changed, a line
  edited; when a digest went out) is stamped with this "now", never the database's ``now()``; the records of runs,
  sessions, logins and the data team's alerts keep the machine's time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from replenish.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

def business_tz() -> ZoneInfo:
    """The retailer's time zone (setting ``timezone``): business dates, order dates and cutoffs live in it."""
    return ZoneInfo(get_settings().timezone)


def local(ts: dt.datetime) -> dt.datetime:
    """An aware timestamp in the business zone (naive ones are taken as UTC, as PostgreSQL returns them)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return ts.astimezone(business_tz())


def at(day: dt.date, time: dt.time = dt.time()) -> dt.datetime:
    """``day`` at local ``time`` in the business zone."""
    return dt.datetime.combine(day, time, tzinfo=business_tz())


def end_of_business_day(business_date: dt.date) -> dt.datetime:
    """Local midnight after the business date: the earliest moment its nightly run can start."""
    return at(business_date + dt.timedelta(days=1))


def order_date_for(business_date: dt.date) -> dt.date:
    """The order date the nightly for ``business_date`` proposes for: the next day."""
    return business_date + dt.timedelta(days=1)


def business_date_for_order_date(order_date: dt.date) -> dt.date:
    return order_date - dt.timedelta(days=1)


def business_date_of_interval(data_interval_start: dt.datetime,
                              data_interval_end: dt.datetime | None = None) -> dt.date:
    """The business date a DAG run is for. A run over a day or less (the nightly, the 5-minute dispatch): the local
    date its data interval starts on. Over a longer interval (the weekly training, Monday 04:00 to Monday 04:00): the
    last business day over by the interval's end, the day its data run through."""
    if data_interval_end is not None and data_interval_end - data_interval_start > dt.timedelta(days=1):
        return local(data_interval_end).date() - dt.timedelta(days=1)
    return local(data_interval_start).date()


@dataclass(frozen=True)
class ClockSetting:
    business_at: dt.datetime
    wall_at: dt.datetime
    is_frozen: bool
    set_by: str

    def now(self, wall_now: dt.datetime) -> dt.datetime:
        if self.is_frozen:
            return local(self.business_at)
        return local(self.business_at + (wall_now - self.wall_at))


def _engine() -> Engine:
    from replenish.database import engine

    return engine()


def setting(conn: Connection | None = None) -> ClockSetting | None:
    """The clock setting in the database, or None (real time)."""
    from sqlalchemy import text

    from replenish import migrations

    def read(c: Connection) -> ClockSetting | None:
        migrations.ensure_current(c)
        row = c.execute(text("SELECT business_at, wall_at, is_frozen, set_by FROM ops.clock")).first()
        return None if row is None else ClockSetting(row[0], row[1], bool(row[2]), row[3])

    if conn is not None:
        return read(conn)
    with _engine().connect() as c:
        return read(c)


def wall_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def now(conn: Connection | None = None) -> dt.datetime:
    """The platform's "now" (aware, business zone): the clock setting if one is stored, else the wall clock."""
    s = setting(conn)
    w = wall_now()
    return local(w) if s is None else s.now(w)


def today(conn: Connection | None = None) -> dt.date:
    """The local date of ``now()``: orders for earlier delivery dates are never sent."""
    return now(conn).date()


def set_clock(business_at: dt.datetime, *, frozen: bool = False, set_by: str = "cli") -> ClockSetting:
    """Pin "now" to ``business_at`` from this instant on (running on in real time unless ``frozen``)."""
    from sqlalchemy import text

    from replenish import migrations

    if business_at.tzinfo is None:
        business_at = business_at.replace(tzinfo=business_tz())
    with _engine().begin() as conn:
        migrations.ensure_current(conn)
        conn.execute(
            text("""INSERT INTO ops.clock (id, business_at, wall_at, is_frozen, set_by)
                    VALUES (true, :b, clock_timestamp(), :f, :by)
                    ON CONFLICT (id) DO UPDATE SET business_at = EXCLUDED.business_at, wall_at = EXCLUDED.wall_at,
                        is_frozen = EXCLUDED.is_frozen, set_by = EXCLUDED.set_by, updated_at = clock_timestamp()"""),
            {"b": business_at, "f": frozen, "by": set_by},
        )
        s = setting(conn)
    assert s is not None
    return s


def advance_to_night_of(business_date: dt.date) -> dt.datetime | None:
    """A set clock that is still before the night of ``business_date`` moves on to that night (as frozen or running
    as it was), so a replay of nights (``replenish run --date A --to B``) runs each one at its own "now": the
    earlier nights' cutoffs pass and their delivery dates come as they would have. The wall clock, or a setting
    already at or past that night, is left alone: re-running an old night never turns time back. Returns the new
    "now", or None when the clock did not move."""
    s = setting()
    night = end_of_business_day(business_date)
    if s is None or s.now(wall_now()) >= night:
        return None
    set_clock(night, frozen=s.is_frozen, set_by=s.set_by)
    return night


def reset_clock() -> None:
    """Back to the wall clock."""
    from replenish import migrations

    with _engine().begin() as conn:
        migrations.ensure_current(conn)
        conn.exec_driver_sql("DELETE FROM ops.clock")


def describe(conn: Connection | None = None) -> dict[str, object]:
    """The clock as the CLI and status report it."""
    s = setting(conn)
    n = s.now(wall_now()) if s else local(wall_now())
    return {
        "now": n.isoformat(timespec="seconds"),
        "today": n.date().isoformat(),
        "timezone": get_settings().timezone,
        "mode": "real time" if s is None else ("frozen" if s.is_frozen else "pinned, running"),
        "set_by": None if s is None else s.set_by,
    }

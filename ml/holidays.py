"""Public holidays and holiday identity: which days are holidays, which holiday a date is, and when it fell in
earlier years.

The holidays themselves come from the maintained ``holidays`` package (every country it knows and their
subdivisions: the German states as BW, BY, ...). A holiday's identity is either Easter-linked (Maundy Thursday ..
Corpus Christi, a fixed offset from Western Easter Sunday, ``dateutil.easter`` as the package uses) or a fixed
month-day. The source data only flags *that* a day is a holiday; these keys say *which*, so that a model can learn
that stores are shut on one holiday and trade like a Sunday on another.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
from dateutil.easter import easter as _western_easter

# offsets from Easter Sunday of the Western Christian movable holidays (Maundy Thursday, Good Friday, Easter Sunday,
# Easter Monday, Ascension, Whit Sunday, Whit Monday, Corpus Christi)
EASTER_OFFSETS = (-3, -2, 0, 1, 39, 49, 50, 60)
EASTER_KEY_BASE = 2000          # keys 1997..2060 are Easter-linked; month * 100 + day (101..1231) are fixed dates


def easter(year: int) -> dt.date:
    """Western (Gregorian) Easter Sunday."""
    return _western_easter(year)


def holiday_key(day: dt.date) -> int:
    """The holiday's identity if ``day`` is a holiday: EASTER_KEY_BASE + offset when ``day`` is an Easter-linked
    date, else month * 100 + day."""
    offset = (day - easter(day.year)).days
    if offset in EASTER_OFFSETS:
        return EASTER_KEY_BASE + offset
    return day.month * 100 + day.day


def same_holiday(day: dt.date, years_back: int) -> dt.date:
    """The date the holiday falling on ``day`` fell ``years_back`` years earlier (Feb 29 -> Feb 28)."""
    key, year = holiday_key(day), day.year - years_back
    if key >= EASTER_KEY_BASE - 10:
        return easter(year) + dt.timedelta(days=key - EASTER_KEY_BASE)
    try:
        return day.replace(year=year)
    except ValueError:
        return dt.date(year, 2, 28)


def keys_and_lags(dates, years: int) -> tuple[np.ndarray, np.ndarray]:
    """For each date: its holiday key (as if it were a holiday) and, per year back, how many days earlier the same
    holiday fell (shape (years, len(dates)))."""
    days = [d.date() for d in dates]
    keys = np.array([holiday_key(d) for d in days], dtype=np.float64)
    lags = np.array([[(d - same_holiday(d, k)).days for d in days] for k in range(1, years + 1)], dtype=np.int64)
    return keys, lags.reshape(years, len(days))


def public_holidays(years: Iterable[int], country: str = "DE", subdiv: str | None = None) -> set[dt.date]:
    """The public holidays of ``country`` (ISO 3166-1 code) in ``years``: the nationwide ones, plus those of
    ``subdiv`` (one of :func:`subdivisions`, e.g. a German state "BW") when given."""
    import holidays

    return set(holidays.country_holidays(country, subdiv=subdiv, years=list(years)))


def subdivisions(country: str = "DE") -> list[str]:
    """The subdivision codes the ``holidays`` package knows for ``country``."""
    import holidays

    return list(holidays.list_supported_countries()[country])

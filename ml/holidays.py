"""Holiday identity from the calendar alone: which holiday a date is, and when it fell in earlier years.

A holiday is either Easter-linked (Maundy Thursday .. Corpus Christi, a fixed offset from Easter Sunday) or on a
fixed month-day. The source data only flags *that* a day is a holiday; these keys say *which*, so that a model can
learn that stores are shut on one holiday and trade like a Sunday on another.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

# offsets from Easter Sunday of the Western Christian movable holidays (Maundy Thursday, Good Friday, Easter Sunday,
# Easter Monday, Ascension, Whit Sunday, Whit Monday, Corpus Christi)
EASTER_OFFSETS = (-3, -2, 0, 1, 39, 49, 50, 60)
EASTER_KEY_BASE = 2000          # keys 1997..2060 are Easter-linked; month * 100 + day (101..1231) are fixed dates


def easter(year: int) -> dt.date:
    """Western (Gregorian) Easter Sunday: the anonymous Gregorian algorithm (Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = (h + l_ - 7 * m + 114) % 31 + 1
    return dt.date(year, month, day)


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


def public_holidays(years) -> set[dt.date]:
    """Germany's nationwide public holidays in ``years``."""
    out: set[dt.date] = set()
    for y in years:
        e = easter(y)
        out |= {dt.date(y, 1, 1), dt.date(y, 5, 1), dt.date(y, 10, 3), dt.date(y, 12, 25), dt.date(y, 12, 26),
                e - dt.timedelta(days=2), e + dt.timedelta(days=1), e + dt.timedelta(days=39),
                e + dt.timedelta(days=50)}
    return out

"""The one clock (``replenish.clock``) on the shared test database: a replay of nights moves a set clock on."""

from __future__ import annotations

import datetime as dt

import pytest

from replenish import clock

D = dt.date(2019, 4, 29)


@pytest.fixture
def wall_clock_after():
    before = clock.setting()
    yield
    if before is None:
        clock.reset_clock()
    else:
        clock.set_clock(before.business_at, frozen=before.is_frozen, set_by=before.set_by)


def test_a_set_clock_moves_on_to_each_replayed_night_and_never_back(wall_clock_after):
    clock.reset_clock()
    assert clock.advance_to_night_of(D) is None and clock.setting() is None      # the wall clock is not touched
    clock.set_clock(clock.at(D - dt.timedelta(days=3), dt.time(0, 5)), frozen=True, set_by="replay")
    assert clock.advance_to_night_of(D) == clock.end_of_business_day(D)
    s = clock.setting()
    assert s is not None and s.is_frozen and s.set_by == "replay"
    assert clock.now() == clock.end_of_business_day(D) and clock.today() == D + dt.timedelta(days=1)
    assert clock.advance_to_night_of(D - dt.timedelta(days=1)) is None              # an older night: time stays
    assert clock.advance_to_night_of(D) is None                                     # that night again: stays
    assert clock.now() == clock.end_of_business_day(D)
    clock.set_clock(clock.at(D, dt.time(21)), set_by="demo")                        # running: moved, still running
    assert clock.advance_to_night_of(D) is not None
    s = clock.setting()
    assert s is not None and not s.is_frozen and clock.now() >= clock.end_of_business_day(D)

"""A run's recorded start is the wall clock, not dag.test()'s logical date (the business day's end)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from replenish.monitoring.listener import run_started_at


def test_a_test_run_started_at_its_logical_date_gets_the_wall_clock() -> None:
    logical = dt.datetime(2019, 4, 30, 22, tzinfo=dt.UTC)
    run = SimpleNamespace(start_date=logical, logical_date=logical)
    before = dt.datetime.now(dt.UTC)
    started = run_started_at(run, "running")
    assert started is not None and started >= before  # now, not 2019
    assert run_started_at(run, "success") is None  # the finishing hook keeps the first record's start


def test_a_scheduled_run_keeps_its_start() -> None:
    logical = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    start = logical + dt.timedelta(hours=1, minutes=30)
    assert run_started_at(SimpleNamespace(start_date=start, logical_date=logical), "success") == start

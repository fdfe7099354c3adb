"""The one clock (``replenish.clock``) on the shared test database: a replay of nights moves a set clock on."""

from __future__ import annotations

import datetime as dt

from replenish import clock

D = dt.date(2019, 4, 29)


def test_a_set_clock_moves_on_to_each_replayed_night_and_never_back(clock_restored):
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


def test_a_runs_business_date_is_the_day_its_data_run_through():
    """The nightly's and the dispatch's: the day their interval starts on. The weekly training's (Monday 04:00 to
    Monday 04:00): the Sunday it trains through, as its stage records it, not the Monday a week before."""
    from replenish.monitoring.listener import business_date_of
    from replenish.orchestration import configure_airflow, logical_date_for

    configure_airflow()   # before Airflow's first import: imported unconfigured, the session's Airflow reads sqlite
    from airflow.timetables.interval import CronDataIntervalTimetable

    def interval(cron: str, business_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
        # the interval of a manual run, as `replenish run --date` starts one (dag.test at that logical date)
        iv = CronDataIntervalTimetable(cron, timezone=clock.business_tz().key).infer_manual_data_interval(
            run_after=logical_date_for(business_date))
        return iv.start, iv.end

    tuesday = dt.date(2019, 4, 30)
    assert clock.business_date_of_interval(*interval("0 0 * * *", tuesday)) == tuesday
    assert clock.business_date_of_interval(*interval("0 4 * * 1", tuesday)) == dt.date(2019, 4, 28)
    assert clock.business_date_of_interval(*interval("0 4 * * 1", dt.date(2019, 4, 15))) == dt.date(2019, 4, 14)
    five = clock.at(tuesday, dt.time(10, 0))
    assert clock.business_date_of_interval(five, five + dt.timedelta(minutes=5)) == tuesday
    assert business_date_of(*interval("0 4 * * 1", tuesday)) == dt.date(2019, 4, 28)

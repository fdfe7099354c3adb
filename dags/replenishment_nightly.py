"""Nightly replenishment: extract -> dbt build -> quality gate -> forecast -> propose -> release -> dispatch.

The data interval is the business day (Europe/Berlin). Tasks only call
``replenish.pipeline``; every import of project code happens inside a task so
that parsing this file does no I/O and loads nothing heavy.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task

DEFAULT_ARGS = {
    "owner": "replenish-data",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
}


def _business_date():
    ctx = get_current_context()
    start = pendulum.instance(ctx["data_interval_start"]).in_timezone("Europe/Berlin")
    return start.date(), ctx["run_id"]


@dag(
    dag_id="replenishment_nightly",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="Europe/Berlin"),
    start_date=pendulum.datetime(2016, 1, 2, tz="Europe/Berlin"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["replenish", "nightly"],
    doc_md=__doc__,
)
def replenishment_nightly():
    @task
    def extract() -> dict:
        from replenish import pipeline

        day, run_id = _business_date()
        return pipeline.extract(day, run_id)

    @task
    def transform() -> dict:
        from replenish import pipeline

        day, run_id = _business_date()
        return pipeline.transform(day, run_id)

    @task
    def validate() -> dict:
        from replenish import pipeline

        day, run_id = _business_date()
        return pipeline.validate(day, run_id)

    @task
    def forecast() -> dict:
        from replenish import pipeline

        day, run_id = _business_date()
        return pipeline.forecast(day, run_id)

    @task
    def propose() -> dict:
        from replenish import pipeline

        day, run_id = _business_date()
        return pipeline.propose(day, run_id)

    @task
    def release() -> dict:
        from replenish import pipeline

        day, run_id = _business_date()
        return pipeline.release(day, run_id)

    @task
    def dispatch() -> dict:
        from replenish import pipeline

        day, run_id = _business_date()
        return pipeline.dispatch(day, run_id)

    extract() >> transform() >> validate() >> forecast() >> propose() >> release() >> dispatch()


replenishment_nightly()

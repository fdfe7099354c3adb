"""Nightly replenishment: extract -> dbt build -> quality gate -> forecast -> propose -> release -> dispatch.

Forecast and propose are mapped over store partitions (setting ``store_partitions``), one task instance per
store group, so that several Celery workers share them; the results equal a single-process run.

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
    def store_partitions() -> list[list[int]]:
        from replenish import pipeline

        day, run_id = _business_date()
        return pipeline.store_partitions(day, run_id)

    # Forecasts and proposals fan out over store partitions (dynamic task mapping), so Celery workers share
    # the load; each partition replaces only its own stores' rows, and the summary task records the stage.
    @task
    def forecast(store_ids: list[int]) -> dict:
        from replenish import pipeline

        day, run_id = _business_date()
        return pipeline.forecast_partition(day, run_id, store_ids)

    @task
    def forecast_summary(parts: list[dict]) -> dict:
        from replenish import pipeline

        day, run_id = _business_date()
        return pipeline.forecast_summary(day, run_id, list(parts))

    @task
    def propose(store_ids: list[int]) -> dict:
        from replenish import pipeline

        day, run_id = _business_date()
        return pipeline.propose_partition(day, run_id, store_ids)

    @task
    def proposals_summary(parts: list[dict]) -> dict:
        from replenish import pipeline

        day, run_id = _business_date()
        return pipeline.propose_summary(day, run_id, list(parts))

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

    # Buyer digests: after dispatch, so "sent automatically" and dead letters are final for the night.
    @task
    def digest() -> dict:
        from replenish import pipeline

        day, run_id = _business_date()
        return pipeline.digest(day, run_id)

    partitions = store_partitions()
    extract() >> transform() >> validate() >> partitions
    forecasted = forecast_summary(forecast.expand(store_ids=partitions))
    proposed = propose.expand(store_ids=partitions)
    forecasted >> proposed
    proposals_summary(proposed) >> release() >> dispatch() >> digest()


replenishment_nightly()

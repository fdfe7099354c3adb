"""Nightly replenishment: extract -> dbt build -> quality gate -> forecast -> propose -> release -> dispatch -> digest.

The data interval is the business day (midnight to midnight in the retailer's time zone, Airflow's
``core.default_timezone``, which ``replenish`` sets from ``REPLENISH_TIMEZONE``); the run proposes the orders of the
next day, whose cutoffs lie after it (``replenish.clock``). Forecast and propose are mapped over store partitions
(setting ``store_partitions``), one task instance per store group, so that several Celery workers share them; the
results equal a single-process run.

Tasks only call ``replenish.pipeline``; every import of project code happens inside a task so that parsing this
file does no I/O and loads nothing heavy.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task, timezone

DEFAULT_ARGS = {
    "owner": "replenish-data",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
}
START = timezone.datetime(2016, 1, 2)  # in core.default_timezone: the retailer's zone


def _stage(name: str, *args: Any) -> Any:
    """``replenish.pipeline.<name>(business date, run id, *args)`` for this run's business day."""
    from replenish import clock, migrations, pipeline

    migrations.ensure_current()  # once per worker process: the schema at this release's head
    ctx = get_current_context()
    day = clock.business_date_of_interval(ctx["data_interval_start"])
    return getattr(pipeline, name)(day, ctx["run_id"], *args)


@dag(
    dag_id="replenishment_nightly",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=START.tzinfo),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["replenish", "nightly"],
    doc_md=__doc__,
)
def replenishment_nightly():
    @task
    def extract() -> dict:
        return _stage("extract")

    @task
    def transform() -> dict:
        return _stage("transform")

    @task
    def validate() -> dict:
        return _stage("validate")

    @task
    def store_partitions() -> list[list[int]]:
        return _stage("store_partitions")

    # Forecasts and proposals fan out over store partitions (dynamic task mapping), so Celery workers share
    # the load; each partition replaces only its own stores' rows, and the summary task records the stage.
    @task
    def forecast(store_ids: list[int]) -> dict:
        return _stage("forecast_partition", store_ids)

    # parts[:] is one slice request; iterating the lazy sequence fetches item after item until a "not found",
    # which the task SDK logs as an error in every nightly's log
    @task
    def forecast_summary(parts: list[dict]) -> dict:
        return _stage("forecast_summary", list(parts[:]))

    @task
    def propose(store_ids: list[int]) -> dict:
        return _stage("propose_partition", store_ids)

    @task
    def proposals_summary(parts: list[dict]) -> dict:
        return _stage("propose_summary", list(parts[:]))

    @task
    def release() -> dict:
        return _stage("release")

    @task
    def dispatch() -> dict:
        return _stage("dispatch")

    # Buyer digests: after dispatch, so "sent automatically" and dead letters are final for the night.
    @task
    def digest() -> dict:
        return _stage("digest")

    partitions = store_partitions()
    extract() >> transform() >> validate() >> partitions
    forecasted = forecast_summary(forecast.expand(store_ids=partitions))
    proposed = propose.expand(store_ids=partitions)
    forecasted >> proposed
    proposals_summary(proposed) >> release() >> dispatch() >> digest()


replenishment_nightly()

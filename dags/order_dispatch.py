"""Frequent dispatch: apply cutoff actions to unreviewed orders, then drain the order outbox so orders
approved in the platform go out within minutes.

Sending is idempotent (the order id is the idempotency key); orders whose
delivery date has passed are never sent.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task

DEFAULT_ARGS = {
    "owner": "replenish-orders",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
}


@dag(
    dag_id="order_dispatch",
    schedule=CronDataIntervalTimetable("*/5 * * * *", timezone="Europe/Berlin"),
    start_date=pendulum.datetime(2016, 1, 2, tz="Europe/Berlin"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["replenish", "orders"],
    doc_md=__doc__,
)
def order_dispatch():
    @task
    def dispatch() -> dict:
        from replenish.orders import dispatch as drain_outbox

        ctx = get_current_context()
        # cutoffs are judged at the end of this run's interval, not the wall clock, so a re-run is deterministic
        return drain_outbox(run_id=ctx["run_id"], now=ctx["data_interval_end"])

    dispatch()


order_dispatch()

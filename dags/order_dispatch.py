"""Frequent dispatch: apply cutoff actions to unreviewed orders, then drain the order outbox so orders
approved in the platform go out within minutes.

Cutoffs are judged at ``replenish.clock.now()``, the clock the nightly run and the platform read (the wall
clock, or the demo's pinned business time). Sending is idempotent (the order id is the idempotency key);
orders whose delivery date has passed are never sent.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task, timezone

DEFAULT_ARGS = {
    "owner": "replenish-orders",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
}
START = timezone.datetime(2016, 1, 2)  # in core.default_timezone: the retailer's zone


@dag(
    dag_id="order_dispatch",
    schedule=CronDataIntervalTimetable("*/5 * * * *", timezone=START.tzinfo),
    start_date=START,
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

        # each order's cutoff action happens once (orders.cutoff), so a re-run or a retry repeats nothing
        return drain_outbox(run_id=get_current_context()["run_id"])

    dispatch()


order_dispatch()

"""Weekly forecast training: backtest a new LightGBM model and promote it only if it beats the current one.

The nightly DAG predicts with whatever model is current; this DAG is the only
place models are trained, on its own weekly schedule (Sunday night, after the
week's last business day is loaded).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task

DEFAULT_ARGS = {
    "owner": "replenish-data",
    "retries": 1,
    "retry_delay": timedelta(minutes=10),
}


@dag(
    dag_id="forecast_training",
    schedule=CronDataIntervalTimetable("0 4 * * 1", timezone="Europe/Berlin"),
    start_date=pendulum.datetime(2016, 1, 2, tz="Europe/Berlin"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["replenish", "forecast", "weekly"],
    doc_md=__doc__,
)
def forecast_training():
    @task
    def train() -> dict:
        from replenish import pipeline

        ctx = get_current_context()
        end = pendulum.instance(ctx["data_interval_end"]).in_timezone("Europe/Berlin").date()
        # The training window ends with the last complete business day of the interval.
        return pipeline.train(end - timedelta(days=1), ctx["run_id"])

    train()


forecast_training()

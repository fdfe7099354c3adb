"""Weekly forecast training: backtest a new LightGBM model and promote it only if it beats the current one.

The nightly DAG predicts with whatever model is current; this DAG is the only
place models are trained, on its own weekly schedule (Sunday night, after the
week's last business day is loaded).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task, timezone

DEFAULT_ARGS = {
    "owner": "replenish-data",
    "retries": 1,
    "retry_delay": timedelta(minutes=10),
}
START = timezone.datetime(2016, 1, 2)  # in core.default_timezone: the retailer's zone


@dag(
    dag_id="forecast_training",
    schedule=CronDataIntervalTimetable("0 4 * * 1", timezone=START.tzinfo),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["replenish", "forecast", "weekly"],
    doc_md=__doc__,
)
def forecast_training():
    @task
    def train() -> dict:
        from replenish import clock, pipeline

        ctx = get_current_context()
        # the training window ends with the last complete business day of the interval: the run's business date
        end = clock.business_date_of_interval(ctx["data_interval_start"], ctx["data_interval_end"])
        return pipeline.train(end, ctx["run_id"])

    train()


forecast_training()

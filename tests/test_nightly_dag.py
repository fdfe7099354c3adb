"""One real nightly run through Airflow's ``dag.test()`` on the embedded Postgres.

Exports of the generated bakery retailer for a short window are written once to a
test folder; the run backfills those days, builds the warehouse with dbt, runs the
quality gate and forecasts. A second run of the same date must leave every table's
row count unchanged.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

BUSINESS_DATE = dt.date(2019, 4, 29)
WINDOW_START = dt.date(2019, 2, 1)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exports_root():
    from replenish.data.exports import write_exports
    from replenish.data.retailer import generate_retailer
    from replenish.settings import get_settings

    settings = get_settings()
    root = settings.state / "test-exports"
    write_exports(generate_retailer(settings), root, start=WINDOW_START, end=BUSINESS_DATE)
    previous = settings.exports_root
    settings.exports_root = root
    yield root
    settings.exports_root = previous


@pytest.fixture(scope="module")
def night_clock():
    """The night after the business date, frozen (as the demo pins it): the run's cutoffs lie ahead of it."""
    import datetime as dt

    from replenish import clock

    clock.set_clock(clock.end_of_business_day(BUSINESS_DATE) + dt.timedelta(hours=1), frozen=True, set_by="test")
    yield
    clock.reset_clock()


@pytest.fixture(scope="module")
def first_run(exports_root, night_clock):
    from replenish import run_state
    from replenish.orchestration import run_dag

    # The nightly run needs a warehouse to train on, so: a first nightly run (fallback forecasts),
    # then the weekly training DAG registers a model, then the nightly run again predicts with it.
    run_dag("replenishment_nightly", BUSINESS_DATE)
    training = run_dag("forecast_training", BUSINESS_DATE)
    assert "success" in training["state"], training
    res = run_dag("replenishment_nightly", BUSINESS_DATE)
    res["stages"] = run_state.stage_results(res["run_id"])
    return res


def test_nightly_run_succeeds_for_a_business_date(first_run):
    assert "success" in first_run["state"], first_run
    assert all("success" in s for s in first_run["tasks"].values()), first_run["tasks"]
    stages = first_run["stages"]
    assert stages["extract"]["rows_loaded"] > 0
    # The first run on an empty warehouse backfills the window; later runs find it loaded.
    from sqlalchemy import text

    from replenish.database import begin

    with begin() as conn:
        loaded = conn.execute(
            text("SELECT count(DISTINCT business_date) FROM raw.load_batches WHERE business_date >= :s"),
            {"s": WINDOW_START},
        ).scalar()
    assert loaded == (BUSINESS_DATE - WINDOW_START).days + 1
    assert stages["transform"]["tests"]["failed"] == 0
    assert "checks" in stages["validate"] or "failed_blocking" in stages["validate"]


def test_training_registered_a_current_model(first_run):
    from replenish.database import engine
    from replenish.forecasting.registry import current_model

    assert current_model(engine()) is not None


def test_forecasts_written_for_the_origin(first_run):
    from sqlalchemy import text

    from replenish.database import begin

    with begin() as conn:
        n, horizons = conn.execute(
            text("SELECT count(*), count(DISTINCT horizon) FROM forecast.forecasts WHERE origin_date = :d"),
            {"d": BUSINESS_DATE},
        ).one()
    assert n > 0 and horizons >= 7
    with begin() as conn:
        versions = conn.execute(
            text("SELECT count(*) FROM forecast.forecasts WHERE origin_date = :d AND model_version IS NOT NULL"),
            {"d": BUSINESS_DATE},
        ).scalar()
    assert versions > 0, "forecasts did not use the registered model"


def test_rerun_leaves_table_counts_identical(first_run):
    from replenish.monitoring.run_log import RUN_LOG_TABLES
    from replenish.orchestration import run_dag
    from replenish.status import table_counts

    # The dispatch stage also drains what other tests left in this shared database's outbox (retries falling due
    # on the wall clock): its side tables are compared for this run's orders only.
    shared = ("orders.alerts", "orders.order_events", "orders.outbox", "orders.send_attempts")
    before, before_own = table_counts(), _own_order_rows()
    again = run_dag("replenishment_nightly", BUSINESS_DATE)
    assert "success" in again["state"]
    after = table_counts()
    # The monitoring plugin logs every Airflow run (the re-run is one more); every data table is unchanged.
    assert {k: v for k, v in before.items() if k not in RUN_LOG_TABLES + shared} == {
        k: v for k, v in after.items() if k not in RUN_LOG_TABLES + shared}
    assert _own_order_rows() == before_own
    assert after["ops.pipeline_runs"] == before["ops.pipeline_runs"] + 1


def _own_order_rows() -> dict[str, int]:
    """Events, alerts and outbox messages of the orders this module's nightly proposed."""
    from sqlalchemy import text

    from replenish import clock
    from replenish.database import begin

    own = "SELECT order_id FROM orders.purchase_orders WHERE order_date = :d"
    with begin() as conn:
        return {t: int(conn.execute(text(f"SELECT count(*) FROM orders.{t} WHERE order_id IN ({own})"),
                                    {"d": clock.order_date_for(BUSINESS_DATE)}).scalar() or 0)
                for t in ("order_events", "alerts", "outbox")}


def test_dispatch_dag_drains_without_sending_twice(first_run):
    from replenish.orchestration import run_dag

    first = run_dag("order_dispatch", BUSINESS_DATE)
    second = run_dag("order_dispatch", BUSINESS_DATE)
    assert "success" in first["state"] and "success" in second["state"]
    # the data team opens the task in the Airflow UI: its log is there, read as the UI reads it
    said = _task_log("order_dispatch", second["run_id"], "dispatch")
    assert "task dispatch succeeded" in said and "dispatch at " in said, said


def test_each_task_of_the_nightly_has_its_log_for_the_airflow_ui(first_run):
    """``dag.test()`` writes no task logs; the run's listener does, where Airflow's file task handler reads them.
    (Another test may have run the date again: a logical date keeps its last run.)"""
    extract = _task_log("replenishment_nightly", None, "extract")
    assert f"stage extract for business date {BUSINESS_DATE}: success" in extract, extract
    assert "loaded {" in extract                                   # the loader's own INFO line
    forecast = _task_log("replenishment_nightly", None, "forecast", map_index=0)
    assert "task forecast succeeded" in forecast and "stage extract" not in forecast
    assert re.search(rf"forecasts for {BUSINESS_DATE}: \d+ rows for stores \d", forecast), forecast


def _task_log(dag_id: str, run_id: str | None, task_id: str, map_index: int = -1) -> str:
    """The events of the task's last attempt (in the DAG's latest run where ``run_id`` is None) as the Airflow UI
    shows them (Airflow's own log reader)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.log.log_reader import TaskLogReader
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        if run_id is None:
            run_id = session.scalars(select(DagRun.run_id).where(DagRun.dag_id == dag_id)
                                     .order_by(DagRun.start_date.desc()).limit(1)).one()
        ti = session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index)).one()
        stream, _ = TaskLogReader().read_log_chunks(ti, ti.try_number, {})
        return "\n".join(str(getattr(m, "event", m)) for m in stream)


def test_run_is_monitored_with_its_figures_and_digested(first_run):
    """The monitoring plugin (loaded by dag.test from plugins/) recorded the run, its tasks and figures."""
    from sqlalchemy import text

    from replenish.database import begin

    assert first_run["stages"]["digest"]["status"] == "success"
    with begin() as conn:
        run = conn.execute(
            text("SELECT state, business_date, figures, links FROM ops.pipeline_runs WHERE run_id = :r "
                 "AND dag_id = 'replenishment_nightly'"), {"r": first_run["run_id"]},
        ).mappings().one()
        tasks = dict(conn.execute(
            text("SELECT task_id, max(state) FROM ops.task_runs WHERE run_id = :r "
                 "AND dag_id = 'replenishment_nightly' GROUP BY task_id"), {"r": first_run["run_id"]},
        ).all())
    assert run["state"] == "success" and run["business_date"] == BUSINESS_DATE
    fig = run["figures"]
    assert fig["rows_loaded"] > 0 and fig["rows_quarantined"] >= 0 and fig["dbt_tests_failed"] == 0
    for key in ("checks_failed_blocking", "orders_auto_released", "orders_to_review", "dispatch_failures",
                "backtest_wape", "digests_sent"):
        assert key in fig, fig
    assert tasks.get("digest") == "success" and tasks.get("extract") == "success"
    assert run["links"]["forecast_report"].endswith(f"forecast_{BUSINESS_DATE}.html")
    assert first_run["stages"]["validate"]["data_docs"], "GX Data Docs not built for the run"


def test_partitioned_forecasts_equal_the_unpartitioned_run(first_run):
    """The DAG maps the forecast over store partitions: their union must be exactly the one-shot result."""
    from sqlalchemy import text

    from replenish import pipeline
    from replenish.database import begin, engine
    from replenish.forecasting.predict import predict_for_date

    sql = text("SELECT store_id, item_id, horizon, p10, p50, p90, model_version, is_flagged FROM forecast.forecasts"
               " WHERE origin_date = :d ORDER BY store_id, item_id, horizon")
    predict_for_date(engine(), BUSINESS_DATE, "whole", automation_blocked=False)
    with begin() as conn:
        whole = conn.execute(sql, {"d": BUSINESS_DATE}).all()
    parts = pipeline.store_partitions(BUSINESS_DATE, "parts", n=3)
    assert len(parts) == 3
    for stores in parts:
        predict_for_date(engine(), BUSINESS_DATE, "parts", automation_blocked=False, store_ids=stores)
    with begin() as conn:
        partitioned = conn.execute(sql, {"d": BUSINESS_DATE}).all()
    assert whole and partitioned == whole

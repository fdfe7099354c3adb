"""The nightly DAG on a real CeleryExecutor: two workers, this machine's Redis and PostgreSQL, no Docker.

A single-process reference run (the pipeline functions one after the other: forecast and propose over one
partition of all stores) and the distributed run (api-server, scheduler, dag-processor and two Celery workers;
forecasts and proposals mapped over store partitions) load the same exports into two fresh databases. The
partitioned tasks must have run on both workers, and forecasts and proposals must be identical row for row.

Heavy (a whole Airflow deployment), so it runs with ``make test-distributed`` (``.ci/run`` calls it), not
in ``make test``. Skipped with a message when Redis (127.0.0.1:6379) or PostgreSQL (127.0.0.1:5432) is down.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

BUSINESS_DATE = dt.date(2019, 4, 29)   # the window of tests/test_nightly_dag.py
WINDOW_START = dt.date(2019, 2, 1)
PG_SERVER = os.environ.get("REPLENISH_DIST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("REPLENISH_DIST_REDIS", "redis://127.0.0.1:6379/13")
DAG_ID = "replenishment_nightly"

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("REPLENISH_TEST_DISTRIBUTED"),
                       reason="distributed Airflow test: run `make test-distributed`"),
]

FORECAST_SQL = """SELECT store_id, item_id, origin_date, target_date, horizon, p10, p50, p90, model_version,
    is_flagged FROM forecast.forecasts ORDER BY store_id, item_id, origin_date, horizon"""
ORDERS_SQL = """SELECT order_id, store_id, supplier_id, delivery_date, next_delivery_date, order_date, cutoff_at,
    status, reasons, channel, order_value FROM orders.purchase_orders ORDER BY order_id"""
LINES_SQL = """SELECT order_id, item_id, proposed_qty, final_qty, explanation::text FROM orders.order_lines
    ORDER BY order_id, item_id"""

# Both warehouses run at the night after the business date (frozen), as tests/test_nightly_dag.py does: at the
# wall clock every 2019 delivery date has passed and neither run would propose an order.
PIN_CLOCK = """
import datetime as dt, sys
from replenish import clock
day = dt.date.fromisoformat(sys.argv[1])
clock.set_clock(clock.end_of_business_day(day) + dt.timedelta(hours=1), frozen=True, set_by="test")
"""

REFERENCE_RUN = PIN_CLOCK + """
import json
from replenish import pipeline, run_state
run_id = "single-process"
for stage in (pipeline.extract, pipeline.transform, pipeline.validate, pipeline.forecast, pipeline.propose,
              pipeline.release, pipeline.dispatch):
    stage(day, run_id)
print(json.dumps(sorted(run_state.stage_results(run_id))))
"""


def _pin_clock(env: dict[str, str]) -> None:
    res = subprocess.run([sys.executable, "-c", PIN_CLOCK, BUSINESS_DATE.isoformat()], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]


def _services_up() -> None:
    from replenish.distributed import reachable

    missing = [name for name, port in (("Redis", 6379), ("PostgreSQL", 5432)) if not reachable("127.0.0.1", port)]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not reachable on 127.0.0.1: distributed test skipped")


def _rows(server: str, db: str, sql: str) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(f"{server}/{db}")
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    _services_up()
    from replenish.data.exports import write_exports
    from replenish.data.retailer import generate_retailer
    from replenish.settings import get_settings

    root = tmp_path_factory.mktemp("dist-exports")
    write_exports(generate_retailer(get_settings()), root, start=WINDOW_START, end=BUSINESS_DATE)
    return root


@pytest.fixture(scope="module")
def reference_db(exports, tmp_path_factory):
    """The single-process run: every stage unpartitioned, in one Python process."""
    from replenish.distributed import CeleryCluster, drop_database, recreate_database

    db = "replenish_dist_single"
    spec = CeleryCluster(PG_SERVER, db, tmp_path_factory.mktemp("single-state"), exports)
    recreate_database(PG_SERVER, db)
    res = subprocess.run([sys.executable, "-c", REFERENCE_RUN, BUSINESS_DATE.isoformat()], env=spec.env(),
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "proposals" in json.loads(res.stdout.strip().splitlines()[-1])
    yield db
    drop_database(PG_SERVER, db)


@pytest.fixture(scope="module")
def distributed_run(exports, reference_db, tmp_path_factory):
    from replenish.distributed import CeleryCluster

    cluster = CeleryCluster(PG_SERVER, "replenish_dist", tmp_path_factory.mktemp("dist-state"), exports,
                            redis_url=REDIS_URL, workers=2, concurrency=1, partitions=4)
    try:
        cluster.start()
        _pin_clock(cluster.env())
        run_id = cluster.trigger(DAG_ID, BUSINESS_DATE)
        state = cluster.wait_for_run(DAG_ID, run_id)
        tis = cluster.task_instances(DAG_ID, run_id)
        results = {name: _rows(PG_SERVER, cluster.warehouse_db, sql)
                   for name, sql in (("forecasts", FORECAST_SQL), ("orders", ORDERS_SQL), ("lines", LINES_SQL))}
        yield {"state": state, "tis": tis, "results": results, "logs": cluster.logs_dir}
    finally:
        cluster.stop(drop=True)


def test_run_succeeds_with_mapped_partitions(distributed_run):
    assert distributed_run["state"] == "success", distributed_run["tis"]
    mapped = [t for t in distributed_run["tis"] if t["task_id"] in ("forecast", "propose")]
    assert {t["map_index"] for t in mapped if t["task_id"] == "forecast"} == {0, 1, 2, 3}
    assert all(t["state"] == "success" for t in distributed_run["tis"]), distributed_run["tis"]


def test_tasks_ran_on_both_workers(distributed_run):
    hosts = {t["hostname"] for t in distributed_run["tis"]}
    assert {"worker1", "worker2"} <= hosts, distributed_run["tis"]
    mapped_hosts = {t["hostname"] for t in distributed_run["tis"] if t["map_index"] >= 0}
    assert len(mapped_hosts) == 2, f"the partitions all ran on {mapped_hosts}"


def test_results_equal_the_single_process_run(distributed_run, reference_db):
    for name, sql in (("forecasts", FORECAST_SQL), ("orders", ORDERS_SQL), ("lines", LINES_SQL)):
        reference = _rows(PG_SERVER, reference_db, sql)
        assert reference, f"the reference run wrote no {name}"
        assert distributed_run["results"][name] == reference, f"{name} differ from the single-process run"

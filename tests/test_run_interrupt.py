"""`replenish run` stopped by SIGTERM or SIGINT while a task runs: the run is told and marked, and a re-run works.

The real command in a subprocess (Airflow's ``dag.test()`` in-process, the monitoring plugin) on a database of its
own (new on every run) holding ten days of the generated retailer's exports; its Airflow metadata database and
state folder are its own too (``<db>_airflow``, ``.state/test-interrupt``), kept between runs only for speed. The
signal is sent once ``ops.task_runs`` says a task is running: SIGTERM in the first task (as a container stop or a CI
timeout sends it), SIGINT in the dbt build (Ctrl-C). Before the fix SIGTERM did nothing until SIGKILL and SIGINT
only failed the attempt, retried five minutes later; a second Ctrl-C left the Airflow run "running" for ever and
``ops.pipeline_runs`` without a row.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from support.cli_process import replenish, signalled

BUSINESS_DATE = dt.date(2019, 4, 29)
WINDOW_START = dt.date(2019, 4, 20)
DATABASE = "replenish_interrupt_test"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def night() -> Iterator[dict[str, Any]]:
    from support.databases import scratch_database

    from replenish.data.exports import write_exports
    from replenish.data.retailer import generate_retailer
    from replenish.database import sqlalchemy_url
    from replenish.settings import get_settings

    settings = get_settings()
    url = scratch_database(DATABASE)
    exports = settings.state / "test-exports-interrupt"
    write_exports(generate_retailer(settings), exports, start=WINDOW_START, end=BUSINESS_DATE)
    # the test process's Airflow settings (other modules configure it in-process) must not reach the child
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(REPLENISH_DATABASE_URL=url, REPLENISH_STATE_DIR=str(settings.state / "test-interrupt"),
               REPLENISH_EXPORTS_ROOT=str(exports))
    clock = subprocess.run(replenish("clock", "set", "2019-04-30T01:00", "--frozen"), env=env,
                           capture_output=True, text=True, timeout=120)
    assert clock.returncode == 0, clock.stderr
    warehouse = create_engine(sqlalchemy_url(url))
    airflow = create_engine(sqlalchemy_url(url) + "_airflow")
    try:
        yield {"env": env, "warehouse": warehouse, "airflow": airflow}
    finally:
        warehouse.dispose()
        airflow.dispose()


def _interrupted_run(night: dict[str, Any], task: str, signum: int) -> dict[str, Any]:
    """`replenish run --date D` sent ``signum`` while ``task`` runs: exit code, stderr and the run id."""
    since = dt.datetime.now(dt.UTC)
    run_id, code, stderr = signalled(["run", "--date", BUSINESS_DATE.isoformat()], night["env"],
                                     lambda proc: _wait_running(night, task, since, proc), signum)
    return {"code": code, "stderr": stderr, "run_id": run_id}


def _wait_running(night: dict[str, Any], task: str, since: dt.datetime, proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"replenish run ended before {task} ran: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with night["warehouse"].connect() as conn:
                row = conn.execute(text("SELECT run_id FROM ops.task_runs WHERE task_id = :t AND state = 'running' "
                                        "AND recorded_at >= :since"), {"t": task, "since": since}).first()
        except Exception:  # noqa: BLE001 - the run creates the ops schema itself
            row = None
        if row is not None:
            return str(row[0])
        time.sleep(0.2)
    raise AssertionError(f"{task} never ran")


def _airflow_states(night: dict[str, Any], run_id: str) -> tuple[str, dict[str, str]]:
    with night["airflow"].connect() as conn:
        run_state = conn.execute(text("SELECT state FROM dag_run WHERE run_id = :r"), {"r": run_id}).scalar_one()
        tis = dict(conn.execute(text("SELECT task_id, state FROM task_instance WHERE run_id = :r AND map_index < 1"),
                                {"r": run_id}).all())
    return run_state, tis


def _recorded(night: dict[str, Any], run_id: str) -> dict[str, Any]:
    with night["warehouse"].connect() as conn:
        run = conn.execute(text("SELECT state, business_date, finished_at FROM ops.pipeline_runs "
                                "WHERE run_id = :r"), {"r": run_id}).mappings().one()
        tasks = {r.task_id: (r.state, r.error) for r in conn.execute(
            text("SELECT task_id, state, error FROM ops.task_runs WHERE run_id = :r AND map_index < 1"),
            {"r": run_id})}
        alerts = conn.execute(text("SELECT count(*) FROM ops.pipeline_alerts WHERE run_id = :r"),
                              {"r": run_id}).scalar_one()
    return {"run": dict(run), "tasks": tasks, "alerts": alerts}


def _assert_marked(night: dict[str, Any], res: dict[str, Any], task: str, name: str, code: int) -> None:
    assert res["code"] == code, res["stderr"][-3000:]
    line = res["stderr"].strip().splitlines()[-1]
    assert line.startswith(f"replenish run: interrupted by {name} during task {task} of the nightly run for "
                           f"business date {BUSINESS_DATE}; Airflow run {res['run_id']} is marked failed"), line
    assert f"`replenish run --date {BUSINESS_DATE}` redoes it safely" in line
    run_state, tis = _airflow_states(night, res["run_id"])
    assert run_state == "failed"
    assert tis[task] == "failed"
    assert tis["digest"] == "skipped" and "running" not in tis.values() and "up_for_retry" not in tis.values()
    rec = _recorded(night, res["run_id"])
    assert rec["run"]["state"] == "failed" and rec["run"]["finished_at"] is not None
    assert rec["run"]["business_date"] == BUSINESS_DATE
    assert rec["tasks"][task] == ("failed", f"Interrupted: {name}")
    assert rec["alerts"] == 1  # the task's final failure; the failed run adds no second mail


def test_sigterm_in_the_first_task_fails_the_run_and_says_so(night: dict[str, Any]) -> None:
    res = _interrupted_run(night, "extract", signal.SIGTERM)
    _assert_marked(night, res, "extract", "SIGTERM", 143)


def test_ctrl_c_in_the_dbt_build_fails_the_run_and_a_rerun_completes_it(night: dict[str, Any]) -> None:
    res = _interrupted_run(night, "transform", signal.SIGINT)
    _assert_marked(night, res, "transform", "SIGINT", 130)

    again = subprocess.run(replenish("run", "--date", BUSINESS_DATE.isoformat(), "--json"),
                           env=night["env"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    doc = json.loads(again.stdout)
    assert doc["state"] == "success" and doc["run_id"] != res["run_id"], doc["tasks"]
    assert _recorded(night, doc["run_id"])["run"]["state"] == "success"
    assert _recorded(night, res["run_id"])["run"]["state"] == "failed"  # the interrupted night stays on record
    dispatch = doc["stages"]["dispatch"]
    assert dispatch["possible_duplicates"] == 0 and dispatch["dead"] == 0
    with night["warehouse"].connect() as conn:
        # one order per store, supplier and delivery, whatever the interrupted run had written
        dupes = conn.execute(text("SELECT count(*) FROM (SELECT 1 FROM orders.purchase_orders WHERE order_date = :d "
                                  "GROUP BY store_id, supplier_id, delivery_date HAVING count(*) > 1) x"),
                             {"d": BUSINESS_DATE + dt.timedelta(days=1)}).scalar_one()
    assert dupes == 0

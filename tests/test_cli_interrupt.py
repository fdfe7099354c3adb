"""Ctrl-C on a command other than `replenish run` (which has its own message: test_run_interrupt): one line on
stderr names the command, what it leaves and how to run it again, exit code 130, no traceback. Before, typer exited
130 without a word. `replenish serve` stopped by Ctrl-C is a server's normal stop: it says it stopped, exit code 0.

Real commands in child processes, sent SIGINT as a terminal sends Ctrl-C."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from support.browser import free_port, wait_http
from support.cli_process import replenish, signalled

from replenish.data.exports import day_complete

BUSINESS_DATE = "2019-04-29"


def _env(**extra: str) -> dict[str, str]:
    # the test process's Airflow settings (other modules configure it in-process) must not reach the child
    return {**{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}, **extra}


def _first_day_written(root: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 240
    while not any(_days(root)):
        if proc.poll() is not None:
            raise AssertionError(f"the import ended before writing a day: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise AssertionError("no export day written in 240 s")
        time.sleep(0.05)


def _days(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        try:
            dt.date.fromisoformat(child.name)
        except ValueError:
            continue
        found.append(child)
    return found


def test_ctrl_c_in_the_export_import_says_what_it_leaves(tmp_path: Path) -> None:
    root = tmp_path / "exports"
    _, code, stderr = signalled(["data", "import-bakery"], _env(REPLENISH_EXPORTS_ROOT=str(root)),
                                lambda proc: _first_day_written(root, proc), signal.SIGINT)
    assert code == 130, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == (
        "replenish data import-bakery: interrupted by Ctrl-C; each day's exports are moved into place only once "
        "complete, and the days already written are skipped next time. `replenish data import-bakery` runs it again.")
    assert "Traceback" not in stderr and "Aborted" not in stderr, stderr[-3000:]
    days = _days(root)
    assert days and all(day_complete(day) for day in days)  # what the line says
    assert sorted(p.name for p in root.iterdir()) == sorted(day.name for day in days)  # no half-written temp folder
    assert len(days) < 1000  # stopped well before the panel's 1,215 days


def test_ctrl_c_stops_the_platform_as_a_normal_end(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    _, code, stderr = signalled(["serve", "--port", str(port)], _env(),
                                lambda proc: wait_http(base + "/healthz", timeout_s=120, proc=proc), signal.SIGINT)
    assert code == 0, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == f"ordering platform on {base} stopped"
    assert "interrupted" not in stderr and "Traceback" not in stderr, stderr[-3000:]


@pytest.mark.slow
def test_ctrl_c_in_a_dbt_build_is_an_interruption_not_a_failed_build(tmp_path: Path) -> None:
    """dbt cancels its queries on Ctrl-C and returned it as a failed result: `replenish build` printed a failed
    build's summary and exited 1."""
    from support.databases import scratch_database

    from replenish.data.exports import write_exports
    from replenish.data.retailer import generate_retailer
    from replenish.database import sqlalchemy_url
    from replenish.pg_server import drop_database
    from replenish.settings import get_settings

    url = scratch_database("replenish_ctrl_c_test")
    day = dt.date.fromisoformat(BUSINESS_DATE)
    write_exports(generate_retailer(get_settings()), tmp_path / "exports", start=day, end=day)
    env = _env(REPLENISH_DATABASE_URL=url, REPLENISH_STATE_DIR=str(tmp_path / "state"),
               REPLENISH_EXPORTS_ROOT=str(tmp_path / "exports"))
    ingest = subprocess.run(replenish("ingest", "--date", BUSINESS_DATE), env=env, capture_output=True, text=True,
                            timeout=300)
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    warehouse = create_engine(sqlalchemy_url(url))
    try:
        _, code, stderr = signalled(["build", "--date", BUSINESS_DATE], env,
                                    lambda proc: _dbt_connected(warehouse, proc), signal.SIGINT)
    finally:
        warehouse.dispose()
        drop_database(url.rsplit("/", 1)[0] + "/postgres", "replenish_ctrl_c_test")
    assert code == 130, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == (
        "replenish build: interrupted by Ctrl-C; dbt replaces each model in one transaction, so each model is either "
        f"as it was or rebuilt. `replenish build --date {BUSINESS_DATE}` runs it again.")
    assert "Traceback" not in stderr, stderr[-3000:]


def _dbt_connected(warehouse: Any, proc: subprocess.Popen) -> None:
    """Wait until dbt has a connection to the warehouse (it is running its models and tests)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the build ended before dbt connected: {proc.stderr.read() if proc.stderr else ''}")
        with warehouse.connect() as conn:
            if conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND application_name = 'dbt'")).scalar_one():
                return
        time.sleep(0.1)
    raise AssertionError("dbt never connected")


def test_the_line_names_the_command_and_what_it_leaves() -> None:
    from replenish.cli import ctrl_c_message

    again = "replenish bench pipeline --case chain"
    assert ctrl_c_message(["bench", "pipeline"], again) == (
        "replenish bench pipeline: interrupted by Ctrl-C; a benchmark prints its figures only at its end and never "
        f"changes the warehouse's data. `{again}` runs it again.")
    assert ctrl_c_message(["ingest"], "replenish ingest --date 2019-04-29") == (
        "replenish ingest: interrupted by Ctrl-C; the day's load is one transaction, so the day is loaded whole or "
        "not at all. `replenish ingest --date 2019-04-29` runs it again.")
    assert ctrl_c_message(["users", "add"], "replenish users add anna").startswith(
        "replenish users add: interrupted by Ctrl-C; nothing is left half-done.")

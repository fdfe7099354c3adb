"""Run the Airflow DAGs of this project in-process (``dag.test()``).

Airflow's metadata lives in a database ``airflow`` on the same PostgreSQL server
as the warehouse, so a ``replenish run`` and a real scheduler see the same runs.
Environment variables must be set before ``airflow`` is first imported.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
from typing import Any

from replenish.database import database_url, ensure_database, url_parts
from replenish.settings import Settings, get_settings

log = logging.getLogger(__name__)


def airflow_database_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    base = database_url(settings)
    parts = url_parts(base)
    # One metadata DB per warehouse DB, so the test suite never touches the demo's runs.
    name = f"{parts['dbname']}_airflow"
    ensure_database(base.rsplit("/", 1)[0] + "/postgres", name)
    auth = parts["user"] + (f":{parts['password']}" if parts["password"] else "")
    return f"postgresql+psycopg2://{auth}@{parts['host']}:{parts['port']}/{name}"


def airflow_env(settings: Settings | None = None) -> dict[str, str]:
    settings = settings or get_settings()
    home = settings.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # the DAGs' schedules and start dates live in the retailer's time zone (settings.timezone)
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": settings.timezone,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": os.environ.get(
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", airflow_database_url(settings)
        ),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": os.environ.get("AIRFLOW__CORE__UNIT_TEST_MODE", "False"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
    }
    return env


def configure_airflow(settings: Settings | None = None) -> None:
    """Set Airflow's environment and migrate its metadata DB once (skipped when current)."""
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME"):
        return
    env = airflow_env(settings)
    os.environ.update(env)
    marker = get_settings().airflow_home / ".migrated"
    if marker.exists() and marker.read_text() == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]:
        return
    log.info("migrating the Airflow metadata database")
    airflow_bin = os.path.join(os.path.dirname(sys.executable), "airflow")
    res = subprocess.run([airflow_bin, "db", "migrate"], env={**os.environ, **env},
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{res.stderr[-3000:]}")
    marker.write_text(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])


def logical_date_for(business_date: dt.date) -> dt.datetime:
    """The logical date whose manual data interval is exactly the business day (in the business time zone)."""
    from replenish import clock

    return clock.end_of_business_day(business_date)


def run_dag(dag_id: str, business_date: dt.date) -> dict[str, Any]:
    """Run one DAG for one business date in-process; returns run id and state per task."""
    configure_airflow()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(get_settings().home / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise KeyError(f"no DAG {dag_id}")
    started = dt.datetime.now(dt.UTC)
    dr = dag.test(logical_date=logical_date_for(business_date))
    _record_wall_start(dag_id, dr.run_id, started)
    tasks = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    return {"dag_id": dag_id, "run_id": dr.run_id, "state": str(dr.state), "tasks": tasks}


def _record_wall_start(dag_id: str, run_id: str, started: dt.datetime) -> None:
    """``dag.test()`` stores the logical date (the business day's end, maybe years ago) as the run's start date,
    so the Airflow UI showed durations like "2774d": store when the run really started."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).update(
            {DagRun.start_date: started}, synchronize_session=False)

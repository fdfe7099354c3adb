"""A local CeleryExecutor deployment of the project's Airflow, started as plain processes (no Docker).

The machine's Redis is the Celery broker; its PostgreSQL holds the Airflow metadata, the Celery results and
the warehouse. An api-server (the execution API that Airflow 3 task-SDK workers report to), a scheduler, a
dag-processor and N Celery workers with distinct names run as subprocesses of :class:`CeleryCluster`. The
distributed test uses it; docker-compose.yml is the same topology with one container per process.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replenish import pg_server

log = logging.getLogger(__name__)

WORKER_NAME_ENV = "REPLENISH_WORKER_NAME"


def worker_hostname() -> str:
    """``[core] hostname_callable``: the worker's name when set, so task instances run by two workers on one
    machine can be told apart; the FQDN otherwise (what Airflow records by default)."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


def reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def recreate_database(server_url: str, name: str) -> None:
    """Drop (if present) and create database ``name``: every run starts from an empty warehouse."""
    pg_server.recreate_database(f"{server_url}/postgres", name)


def drop_database(server_url: str, name: str) -> None:
    pg_server.drop_database(f"{server_url}/postgres", name)


_TRIGGER = """
import datetime, sys
from airflow.api.common.trigger_dag import trigger_dag
from airflow.utils.types import DagRunTriggeredByType
when = datetime.datetime.fromisoformat(sys.argv[2])
trigger_dag(sys.argv[1], triggered_by=DagRunTriggeredByType.CLI, run_id=sys.argv[3], logical_date=when,
            run_after=when)
"""


@dataclass
class CeleryCluster:
    """Airflow components for one warehouse database; ``start()`` / ``stop()`` own every process."""

    server_url: str                      # postgresql://user@host:port (no database)
    warehouse_db: str
    state_dir: Path
    exports_root: Path
    redis_url: str = "redis://127.0.0.1:6379/13"
    workers: int = 2
    concurrency: int = 1
    partitions: int = 4
    api_port: int = field(default_factory=free_port)
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def airflow_db(self) -> str:
        return f"{self.warehouse_db}_airflow"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "process-logs"

    def env(self) -> dict[str, str]:
        from replenish.settings import get_settings

        settings = get_settings()
        home = settings.home
        host_part = self.server_url.split("://", 1)[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "REPLENISH_"))}
        env.update({
            "REPLENISH_DATABASE_URL": f"{self.server_url}/{self.warehouse_db}",
            "REPLENISH_STATE_DIR": str(self.state_dir),
            "REPLENISH_EXPORTS_ROOT": str(self.exports_root),
            "REPLENISH_STORE_PARTITIONS": str(self.partitions),
            "AIRFLOW_HOME": str(self.state_dir / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # the nightly's data interval is the business day in the retailer's time zone, on every component
            # and in the process that triggers the run, as in orchestration.airflow_env
            "REPLENISH_TIMEZONE": settings.timezone,
            "AIRFLOW__CORE__DEFAULT_TIMEZONE": settings.timezone,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "replenish.distributed.worker_hostname",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__SECRET_KEY": self.jwt_secret,
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{host_part}/{self.airflow_db}",
            "AIRFLOW__CELERY__BROKER_URL": self.redis_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{host_part}/{self.airflow_db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
            # Only manually triggered runs: the scheduler must not start "today's" run of the nightly DAG.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        })
        return env

    def _airflow(self, *args: str, timeout: float = 300) -> str:
        airflow = str(Path(sys.executable).with_name("airflow"))
        res = subprocess.run([airflow, *args], env=self.env(), capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
        return res.stdout

    def _spawn(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        airflow = str(Path(sys.executable).with_name("airflow"))
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        out = (self.logs_dir / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(
            [airflow, *args], env={**self.env(), **(extra_env or {})}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the component and its children
        )

    def start(self) -> None:
        """Fresh databases, migrated metadata, then api-server, dag-processor, scheduler and the workers."""
        recreate_database(self.server_url, self.warehouse_db)
        recreate_database(self.server_url, self.airflow_db)
        self._flush_broker()  # no task messages left over from an earlier, interrupted run
        (self.state_dir / "airflow").mkdir(parents=True, exist_ok=True)
        self._airflow("db", "migrate", timeout=600)
        self._spawn("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.api_port),
                    "--workers", "1", "--apps", "execution")
        self._spawn("dag-processor", "dag-processor")
        self._spawn("scheduler", "scheduler")
        for i in range(1, self.workers + 1):
            name = f"worker{i}"
            self._spawn(name, "celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency",
                        str(self.concurrency), "--skip-serve-logs", "--without-gossip", "--without-mingle",
                        extra_env={WORKER_NAME_ENV: name})

    def _metadata_rows(self, sql: str, params: tuple) -> list[dict[str, Any]]:
        """The rows of one query on the Airflow metadata database, as dicts."""
        import psycopg2

        conn = psycopg2.connect(f"{self.server_url}/{self.airflow_db}")
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                cols = [c[0] for c in cur.description]
                return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
        finally:
            conn.close()

    def wait_for_dag(self, dag_id: str, timeout: float = 300) -> None:
        """Until the dag-processor has serialized the DAG (workers and scheduler only see serialized DAGs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if self._metadata_rows("SELECT 1 AS serialized FROM serialized_dag WHERE dag_id = %s", (dag_id,)):
                return
            time.sleep(3)
        raise TimeoutError(f"DAG {dag_id} not serialized after {timeout}s; see {self.logs_dir}")

    def trigger(self, dag_id: str, business_date: dt.date) -> str:
        from replenish.orchestration import logical_date_for

        self.wait_for_dag(dag_id)
        self._airflow("dags", "unpause", dag_id)
        run_id = f"distributed__{business_date.isoformat()}"
        # `airflow dags trigger --logical-date` infers the data interval from "now" (run_after); the business
        # day is the data interval, so trigger with run_after = the logical date, as dag.test() does.
        res = subprocess.run([sys.executable, "-c", _TRIGGER, dag_id, logical_date_for(business_date).isoformat(),
                              run_id], env=self.env(), capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            raise RuntimeError(f"triggering {dag_id} failed:\n{res.stderr[-3000:]}")
        return run_id

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self._metadata_rows(
            "SELECT task_id, map_index, state, hostname, try_number FROM task_instance"
            " WHERE dag_id = %s AND run_id = %s ORDER BY start_date NULLS LAST, task_id, map_index",
            (dag_id, run_id),
        )

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 1800) -> str:
        """The run's final state; fails fast when a task fails or waits for a retry (retries wait minutes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            rows = self._metadata_rows("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))
            state = rows[0]["state"] if rows else None
            if state in ("success", "failed"):
                return str(state)
            bad = [t for t in self.task_instances(dag_id, run_id) if t["state"] in ("failed", "up_for_retry")]
            if bad:
                raise RuntimeError(f"task(s) failed: {bad}; task logs under {self.state_dir / 'airflow' / 'logs'}")
            time.sleep(5)
        raise TimeoutError(f"run {run_id} not finished after {timeout}s: {self.task_instances(dag_id, run_id)}")

    def _check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"Airflow component(s) exited: {dead}; logs in {self.logs_dir}")

    def stop(self, drop: bool = True) -> None:
        """End every process this cluster started (by process group), then drop its databases."""
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # the group: a worker's forked task processes too
            except ProcessLookupError:
                pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        self.procs.clear()
        if drop:
            drop_database(self.server_url, self.warehouse_db)
            drop_database(self.server_url, self.airflow_db)
            self._flush_broker()

    def _flush_broker(self) -> None:
        """Empty the broker's Redis database: it is dedicated to this cluster (a db number of its own)."""
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            client.flushdb()
        finally:
            client.close()

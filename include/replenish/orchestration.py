"""Run the Airflow DAGs of this project in-process (``dag.test()``).

Airflow's metadata lives in a database ``airflow`` on the same PostgreSQL server
as the warehouse, so a ``replenish run`` and a real scheduler see the same runs.
Environment variables must be set before ``airflow`` is first imported.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pluggy import HookimplMarker

from replenish.database import database_url, url_parts
from replenish.pg_server import ensure_database
from replenish.settings import Settings, get_settings

if TYPE_CHECKING:
    from replenish.interruption import SignalTrap

log = logging.getLogger(__name__)
hookimpl = HookimplMarker("airflow")  # Airflow's listener hooks


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


def write_airflow_cfg(env: dict[str, str]) -> Path:
    """Make ``$AIRFLOW_HOME/airflow.cfg`` say what the environment says (the project's DAGs and plugin, no
    examples, the warehouse server's metadata DB): Airflow writes a default one (sqlite, example DAGs) on first
    import, which misleads whoever starts ``airflow`` by hand with that AIRFLOW_HOME. Every ``AIRFLOW__S__K``
    of ``env`` becomes ``k = value`` in section ``[s]`` (replacing the line, or added to the section)."""
    path = Path(env["AIRFLOW_HOME"]) / "airflow.cfg"
    wanted: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        parts = name.split("__")
        if len(parts) == 3 and parts[0] == "AIRFLOW":
            wanted.setdefault(parts[1].lower(), {})[parts[2].lower()] = value
    lines = path.read_text().splitlines() if path.exists() else []
    out: list[str] = ["# Written by replenish (replenish.orchestration.airflow_env): the same values are set in the",
                      "# environment of every Airflow process it starts; `replenish airflow-ui` starts the UI on them."]
    lines = [ln for ln in lines if not ln.startswith("# Written by replenish") and
             not ln.startswith("# environment of every Airflow process")]
    section, done = "", set()

    def flush(sec: str) -> None:
        for key, value in wanted.get(sec, {}).items():
            if (sec, key) not in done:
                out.append(f"{key} = {value}")
                done.add((sec, key))

    for ln in lines:
        m = re.match(r"\s*\[([^\]]+)\]\s*$", ln)
        if m:
            flush(section)
            section = m.group(1).strip().lower()
            out.append(ln)
            continue
        k = re.match(r"\s*#?\s*([a-z0-9_]+)\s*=", ln)
        if k and section in wanted and k.group(1) in wanted[section] and (section, k.group(1)) not in done:
            out.append(f"{k.group(1)} = {wanted[section][k.group(1)]}")
            done.add((section, k.group(1)))
            continue
        out.append(ln)
    flush(section)
    for sec in wanted:
        if any((sec, k) not in done for k in wanted[sec]):
            out.append(f"\n[{sec}]")
            flush(sec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")
    path.chmod(0o600)  # it may hold the metadata DB's password
    return path


def configure_airflow(settings: Settings | None = None) -> None:
    """Set Airflow's environment and migrate its metadata DB once (skipped when current)."""
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME"):
        return
    env = airflow_env(settings)
    os.environ.update(env)
    write_airflow_cfg(env)
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
    """Run one DAG for one business date in-process; returns run id and state per task.

    SIGINT or SIGTERM (Ctrl-C, a container stop, a CI timeout) ends the run: the Airflow run and the task
    instances it left unfinished are marked failed, through Airflow's listeners (``ops.pipeline_runs``,
    ``ops.task_runs`` and the failure alert), and :class:`replenish.interruption.Interrupted` is raised with
    ``details`` saying what was marked. A re-run of the date is a new Airflow run of the same stages."""
    configure_airflow()
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.listener import get_listener_manager

    from replenish.interruption import Interrupted, trap_signals
    from replenish.task_log_files import TaskLogFiles

    with trap_signals() as trap:
        bag = DagBag(dag_folder=str(get_settings().home / "dags"))
        if bag.import_errors:
            raise RuntimeError(f"DAG import errors: {bag.import_errors}")
        dag = bag.get_dag(dag_id)
        if dag is None:
            raise KeyError(f"no DAG {dag_id}")
        started = dt.datetime.now(dt.UTC)
        guard, log_files = _TaskSignalGuard(trap), TaskLogFiles()
        tasks_hooks = get_listener_manager()
        tasks_hooks.add_listener(guard)
        tasks_hooks.add_listener(log_files)
        try:
            dr = dag.test(logical_date=logical_date_for(business_date))
            trap.check()
        except Interrupted as exc:
            with trap.held():
                trap.arm()
                exc.details.update(dag_id=dag_id, business_date=business_date.isoformat())
                exc.details.update(_fail_interrupted_run(dag_id, logical_date_for(business_date), started, exc))
            raise
        finally:
            tasks_hooks.pm.unregister(guard)
            tasks_hooks.pm.unregister(log_files)
            log_files.close()
    _record_wall_start(dag_id, dr.run_id, started)
    tasks = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    return {"dag_id": dag_id, "run_id": dr.run_id, "state": str(dr.state), "tasks": tasks}


class _TaskSignalGuard:
    """Keeps SIGINT and SIGTERM ending the run while ``dag.test()`` runs tasks in this process (a listener of the
    Task SDK, registered by :func:`run_dag` for one run).

    Airflow's in-process task runner replaces the SIGTERM handler at the start of every task (with one that only
    calls the operator's ``on_kill``) and never puts it back: the trap is armed again as each task starts and ends.
    It also catches every exception of the task, the interruption included, and makes it a failed attempt retried
    five minutes later: the interruption is raised again when the task's hooks are done, which ends ``dag.test()``.
    A SIGTERM in the moment between a task's start and its running hook only reaches the operator's ``on_kill``."""

    def __init__(self, trap: SignalTrap) -> None:
        self.trap = trap

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        self.trap.arm()

    @hookimpl
    def before_stopping(self, component: Any) -> None:
        self.trap.arm()
        self.trap.check()


def _fail_interrupted_run(dag_id: str, logical_date: dt.datetime, started: dt.datetime,
                          exc: BaseException) -> dict[str, Any]:
    """Mark the interrupted run failed as Airflow's "mark failed" does (running task instances failed, the ones not
    started skipped), with the attempt the signal cut short failed too, and tell the listeners (the monitoring
    plugin records the run and task attempts in ``ops`` and sends the one failure alert). What was done, for the
    message: ``run_id``, ``tasks`` (those that were running), ``marked``; ``mark_error`` when it failed."""
    from airflow import settings
    from airflow.api.common.mark_tasks import set_dag_run_state_to_failed
    from airflow.listeners.listener import get_listener_manager
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select, text

    out: dict[str, Any] = {"run_id": None, "tasks": [], "marked": False}
    try:
        if settings.Session is not None:
            settings.Session.remove()  # dag.test()'s session may be mid-transaction where the signal hit
        with create_session() as session:
            if session.get_bind().dialect.name == "postgresql":
                # a lock still held where the signal hit must end in a message, not in a hang
                session.execute(text("SET LOCAL lock_timeout = '30s'"))
            dr = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.logical_date == logical_date))
            if dr is None:
                return out  # interrupted before dag.test() created the run
            out["run_id"] = dr.run_id
            if dr.state != DagRunState.RUNNING:
                return out  # it had ended, or the signal came before dag.test() replaced an earlier run of the date
            # the attempt the signal cut short: Airflow's task runner took it for a failure to retry
            cut = [ti for ti in dr.get_task_instances(session=session)
                   if ti.state in (TaskInstanceState.UP_FOR_RETRY, TaskInstanceState.QUEUED,
                                   TaskInstanceState.RESTARTING)]
            for ti in cut:
                ti.set_state(TaskInstanceState.FAILED, session=session)
            sdag = DBDagBag().get_dag_for_run(dr, session=session)
            if sdag is None:
                raise RuntimeError(f"no serialized DAG {dag_id} for run {dr.run_id}")
            _, killed = set_dag_run_state_to_failed(dag=sdag, run_id=dr.run_id, commit=True, session=session)
            session.flush()
            failed = list(dict.fromkeys((ti.task_id, ti.map_index) for ti in cut + killed))
            out["tasks"] = [task + (f"[{index}]" if index >= 0 else "") for task, index in failed]
        out["marked"] = True
        _record_wall_start(dag_id, out["run_id"], started)
        hooks = get_listener_manager().hook
        with create_session() as session:
            dr = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id,
                                                      DagRun.run_id == out["run_id"])).one()
            by_key = {(ti.task_id, ti.map_index): ti for ti in dr.get_task_instances(session=session)}
            # the tasks first: a failed run whose tasks alerted sends no second alert
            for key in failed:
                try:
                    hooks.on_task_instance_failed(previous_state=TaskInstanceState.RUNNING,
                                                  task_instance=by_key[key], error=exc)
                except Exception:  # noqa: BLE001 - a listener never stops the marking
                    log.exception("listener failed on an interrupted task")
            try:
                hooks.on_dag_run_failed(dag_run=dr, msg=f"interrupted by {getattr(exc, 'signal_name', exc)}")
            except Exception:  # noqa: BLE001
                log.exception("listener failed on an interrupted run")
    except Exception as err:  # noqa: BLE001 - the interruption is reported all the same, with this
        log.exception("could not mark the interrupted run failed")
        out["mark_error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return out


def _record_wall_start(dag_id: str, run_id: str, started: dt.datetime) -> None:
    """``dag.test()`` stores the logical date (the business day's end, maybe years ago) as the run's start date,
    so the Airflow UI showed durations like "2774d": store when the run really started."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).update(
            {DagRun.start_date: started}, synchronize_session=False)


UI_ADMIN = "demo-admin"  # the Airflow UI's one user (SimpleAuthManager), named like the platform's demo admin


def airflow_ui_env(settings: Settings | None = None, *, host: str = "127.0.0.1", port: int = 8080) -> tuple[
        dict[str, str], str]:
    """The environment of ``replenish airflow-ui``: the project's Airflow settings plus a local API server with
    Airflow 3's simple auth manager and one admin whose password is generated now (returned, written to the
    passwords file Airflow reads); the JWT secret is shared by the processes so a sign-in holds across them."""
    settings = settings or get_settings()
    env = airflow_env(settings)
    home = Path(env["AIRFLOW_HOME"])
    password = secrets.token_urlsafe(12)
    pw_file = home / "simple_auth_manager_passwords.json"
    pw_file.write_text(json.dumps({UI_ADMIN: password}) + "\n")
    pw_file.chmod(0o600)
    secret_file = home / ".api_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    secret = secret_file.read_text().strip()
    env.update({
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{UI_ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(pw_file),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # the LocalExecutor's worker processes, all forked at start; an explicit setting of the caller's wins
        "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM") or str(ui_parallelism()),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # looking around never starts a nightly by itself
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret,
        "AIRFLOW__API__SECRET_KEY": secret,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL":
            f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/execution/",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    })
    return env, password


def ui_parallelism() -> int:
    """Task slots of the UI's scheduler: one per CPU this process may use, at least 2 (a run's extract and the
    dispatch DAG side by side). LocalExecutor forks ``core.parallelism`` workers at once when it starts, and
    Airflow's default of 32 was 32 idle processes (and a slow stop) on a laptop or a 2-core CI machine."""
    try:
        cpus = len(os.sched_getaffinity(0))  # what a container's or taskset's CPU set allows, not the host's
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(2, cpus)


def start_airflow_ui(env: dict[str, str], *, scheduler: bool = True) -> list[subprocess.Popen]:
    """api-server (the UI), dag-processor (the project's DAGs into the metadata DB) and, to run what is
    triggered in the UI, a scheduler: one process each, on the metadata DB of ``env``."""
    airflow_bin = os.path.join(os.path.dirname(sys.executable), "airflow")
    full = {**os.environ, **env}
    res = subprocess.run([airflow_bin, "db", "migrate"], env=full, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{res.stderr[-3000:]}")
    cmds = [["api-server", "--host", env["AIRFLOW__API__HOST"], "--port", env["AIRFLOW__API__PORT"]],
            ["dag-processor"]] + ([["scheduler"]] if scheduler else [])
    logs = Path(env["AIRFLOW_HOME"]) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for cmd in cmds:
        out = open(logs / f"ui-{cmd[0]}.log", "ab")  # noqa: SIM115 - the process owns it until it ends
        # Each component leads a process group of its own, so stop_airflow_ui can end what it forked (the
        # scheduler's LocalExecutor workers, its log server) even after the component itself is gone.
        procs.append(subprocess.Popen([airflow_bin, *cmd], env=full, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True, preexec_fn=_end_with_parent))
    return procs


def _end_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies (even by SIGKILL), as when it shared
    that process's group. Linux only (prctl PR_SET_PDEATHSIG); elsewhere stop_airflow_ui alone ends it."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def stop_airflow_ui(procs: list[subprocess.Popen], timeout: float = 20.0) -> None:
    """End the processes of :func:`start_airflow_ui` and all they started: SIGTERM to each component (a scheduler
    ends its executor's workers), then, after ``timeout`` seconds at most, SIGKILL to what is left of each
    component's process group. SIGTERM to the whole group used to reach the LocalExecutor workers with their
    scheduler, which was then killed while it waited for them: they lived on as orphans."""
    import signal
    import time

    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(_exited(p.pid) for p in procs):
        time.sleep(0.2)
    for p in procs:
        # the leader is not reaped yet (a zombie at most), so its group id cannot name another process's group
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait()


def _exited(pid: int) -> bool:
    """Whether child ``pid`` has ended, without reaping it (its process group id stays reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True

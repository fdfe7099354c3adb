"""The Airflow listener (registered by ``plugins/replenish_monitoring.py``).

Task hooks run where the task runs (the worker, or the ``dag.test()`` process); DAG run hooks run in
the scheduler (or the ``dag.test()`` process). Every hook swallows its own errors: monitoring must
never fail a task or stop the scheduler. Nothing heavy is imported until a hook fires.

A failed attempt that will be retried (state ``up_for_retry``) is recorded but not alerted; the
attempt that leaves the task ``failed`` sends the one alert for that task instance.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pluggy import HookimplMarker

hookimpl = HookimplMarker("airflow")
log = logging.getLogger(__name__)


def _state(obj: Any) -> str:
    st = getattr(obj, "state", None)
    return str(getattr(st, "value", st) or "")


def is_final_failure(state: str, try_number: int, max_tries: int) -> bool:
    """``failed`` is final, ``up_for_retry`` is not; without a state, compare the attempt with the retries."""
    if state in ("failed", "up_for_retry"):
        return state == "failed"
    return try_number > max_tries


def business_date_of(data_interval_start: Any) -> dt.date | None:
    """The business day a run covers: its data interval start in the retailer's time zone."""
    if data_interval_start is None:
        return None
    from zoneinfo import ZoneInfo

    from replenish.settings import get_settings

    start = data_interval_start
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    return start.astimezone(ZoneInfo(get_settings().timezone)).date()


class MonitoringListener:
    """Records every task attempt and DAG run in the warehouse; alerts once per final failure."""

    # ------------------------------------------------------------------ tasks
    def _task(self, ti: Any, state: str, error: BaseException | str | None = None) -> None:
        from replenish.database import engine
        from replenish.monitoring.store import ensure_schema, record_task_run

        with engine().begin() as conn:
            ensure_schema(conn)
            record_task_run(
                conn, dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                map_index=int(getattr(ti, "map_index", -1) if getattr(ti, "map_index", None) is not None else -1),
                try_number=int(getattr(ti, "try_number", 0) or 0), max_tries=getattr(ti, "max_tries", None),
                state=state, started_at=getattr(ti, "start_date", None),
                finished_at=None if state == "running" else getattr(ti, "end_date", None) or dt.datetime.now(dt.UTC),
                error=None if error is None else f"{type(error).__name__}: {error}"
                if isinstance(error, BaseException) else str(error),
            )

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        try:
            self._task(task_instance, "running")
        except Exception:  # noqa: BLE001
            log.exception("monitoring: could not record a running task")

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        try:
            self._task(task_instance, "success")
        except Exception:  # noqa: BLE001
            log.exception("monitoring: could not record a successful task")

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        ti = task_instance
        try:
            try_number, max_tries = int(ti.try_number or 0), int(getattr(ti, "max_tries", 0) or 0)
            final = is_final_failure(_state(ti), try_number, max_tries)
            self._task(ti, "failed" if final else "up_for_retry", error)
            if final:
                from replenish.database import engine
                from replenish.monitoring.alerts import alert_failure
                from replenish.monitoring.figures import run_links
                from replenish.settings import get_settings

                map_index = getattr(ti, "map_index", -1)
                alert_failure(engine(), dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                              map_index=-1 if map_index is None else int(map_index), try_number=try_number,
                              error=None if error is None else str(error), links=run_links(get_settings(), None))
        except Exception:  # noqa: BLE001
            log.exception("monitoring: could not record or alert a failed task")

    # --------------------------------------------------------------- DAG runs
    def _dag_run(self, dag_run: Any, state: str) -> None:
        from replenish.database import engine
        from replenish.monitoring.figures import run_figures, run_links
        from replenish.monitoring.store import ensure_schema, record_dag_run
        from replenish.settings import get_settings

        day = business_date_of(getattr(dag_run, "data_interval_start", None))
        finished = state != "running"
        with engine().begin() as conn:
            ensure_schema(conn)
            record_dag_run(
                conn, dag_id=dag_run.dag_id, run_id=dag_run.run_id, business_date=day, state=state,
                started_at=getattr(dag_run, "start_date", None),
                finished_at=(getattr(dag_run, "end_date", None) or dt.datetime.now(dt.UTC)) if finished else None,
                figures=run_figures(conn, dag_run.run_id, day) if finished else {},
                links=run_links(get_settings(), day),
            )
        if state == "failed":
            self._alert_dag_run(dag_run, day)

    def _alert_dag_run(self, dag_run: Any, day: dt.date | None) -> None:
        """A failed run whose tasks already alerted needs no second mail (e.g. a run that timed out does)."""
        from sqlalchemy import text

        from replenish.database import engine
        from replenish.monitoring.alerts import alert_failure
        from replenish.monitoring.figures import run_links
        from replenish.settings import get_settings

        with engine().connect() as conn:
            alerted = conn.execute(
                text("SELECT 1 FROM ops.pipeline_alerts WHERE dag_id = :d AND run_id = :r LIMIT 1"),
                {"d": dag_run.dag_id, "r": dag_run.run_id},
            ).first()
        if alerted is None:
            alert_failure(engine(), dag_id=dag_run.dag_id, run_id=dag_run.run_id, error="the DAG run failed",
                          links=run_links(get_settings(), day))

    @hookimpl
    def on_dag_run_running(self, dag_run: Any, msg: str) -> None:
        try:
            self._dag_run(dag_run, "running")
        except Exception:  # noqa: BLE001
            log.exception("monitoring: could not record a running DAG run")

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        try:
            self._dag_run(dag_run, "success")
        except Exception:  # noqa: BLE001
            log.exception("monitoring: could not record a successful DAG run")

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        try:
            self._dag_run(dag_run, "failed")
        except Exception:  # noqa: BLE001
            log.exception("monitoring: could not record a failed DAG run")

"""The Airflow listener (registered by ``plugins/replenish_monitoring.py``).

Task hooks run where the task runs (the worker, or the ``dag.test()`` process); DAG run hooks run in
the scheduler (or the ``dag.test()`` process). Every hook swallows its own errors: monitoring must
never fail a task or stop the scheduler. Nothing heavy is imported until a hook fires.

A failed attempt that will be retried (state ``up_for_retry``) is recorded but not alerted; the
attempt that leaves the task ``failed`` sends the one alert for that task instance.

The warehouse may be the reason a run fails. Every record (task attempt, DAG run, alert) is therefore
delivered with reconnects (``REPLENISH_MONITORING_RECONNECT_*``) and, when the warehouse stays unreachable,
spooled to a local file (``monitoring.spool``) that every later hook delivers first once it answers again:
a failed run is recorded and alerted even when the database was gone when it failed, and alerted once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from pluggy import HookimplMarker

hookimpl = HookimplMarker("airflow")
log = logging.getLogger(__name__)

_sleep = time.sleep  # the wait between reconnect attempts (a module attribute, so a test can step the clock)


def _state(obj: Any) -> str:
    st = getattr(obj, "state", None)
    return str(getattr(st, "value", st) or "")


def is_final_failure(state: str, try_number: int, max_tries: int) -> bool:
    """``failed`` is final, ``up_for_retry`` is not; without a state, compare the attempt with the retries."""
    if state in ("failed", "up_for_retry"):
        return state == "failed"
    return try_number > max_tries


def business_date_of(data_interval_start: Any, data_interval_end: Any = None) -> dt.date | None:
    """The business day a run covers (``clock.business_date_of_interval``: the weekly training's is the last day it
    trains on, as its stage records it)."""
    if data_interval_start is None:
        return None
    from replenish import clock

    return clock.business_date_of_interval(data_interval_start, data_interval_end)


def _when(v: Any) -> str | None:
    return None if v is None else v.isoformat() if hasattr(v, "isoformat") else str(v)


def _parse_when(v: Any) -> dt.datetime | None:
    return None if v is None else dt.datetime.fromisoformat(v) if isinstance(v, str) else v


def _error_text(error: BaseException | str | None) -> str | None:
    if error is None:
        return None
    return f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)


def deliver(rec: dict[str, Any]) -> None:
    """Write one monitoring record to the warehouse (raises when it cannot be reached).

    Kinds: ``task`` (an attempt, with its alert when it was the final failure), ``dag_run`` (with the run's
    figures, computed now from what its stages recorded, and the alert of a failed run no task alerted),
    ``alert_status`` (the outcome of an alert mail whose status could not be written).
    """
    from replenish import migrations
    from replenish.database import engine
    from replenish.monitoring.alerts import AlertStatusNotRecorded, alert_failure, keep_status_for_later, mark_alert
    from replenish.monitoring.run_log import record_task_run

    kind = rec["kind"]
    try:
        if kind == "task":
            t = rec["task"]
            with engine().begin() as conn:
                migrations.ensure_current(conn)
                record_task_run(conn, **{**t, "started_at": _parse_when(t["started_at"]),
                                         "finished_at": _parse_when(t["finished_at"])})
            if rec.get("alert"):
                alert_failure(engine(), **rec["alert"])
        elif kind == "dag_run":
            _deliver_dag_run(rec)
        elif kind == "alert_status":
            mark_alert(engine(), **rec["alert_status"])
        else:
            raise ValueError(f"unknown monitoring record kind {kind!r}")
    except AlertStatusNotRecorded as exc:
        # the mail went out (or failed for good); only its status is missing: keep it for later, never resend
        keep_status_for_later(exc)


def _deliver_dag_run(rec: dict[str, Any]) -> None:
    from sqlalchemy import text

    from replenish import migrations
    from replenish.database import engine
    from replenish.monitoring.alerts import alert_failure
    from replenish.monitoring.figures import run_figures
    from replenish.monitoring.run_log import record_dag_run

    r = rec["dag_run"]
    day = dt.date.fromisoformat(r["business_date"]) if r.get("business_date") else None
    finished = r["state"] != "running"
    with engine().begin() as conn:
        migrations.ensure_current(conn)
        record_dag_run(conn, dag_id=r["dag_id"], run_id=r["run_id"], business_date=day, state=r["state"],
                       started_at=_parse_when(r.get("started_at")), finished_at=_parse_when(r.get("finished_at")),
                       figures=run_figures(conn, r["run_id"], day) if finished else {}, links=r.get("links") or {})
    if r["state"] != "failed":
        return
    # A failed run whose tasks already alerted needs no second mail (a run that timed out, or failed before any
    # task did, does).
    with engine().connect() as conn:
        alerted = conn.execute(
            text("SELECT 1 FROM ops.pipeline_alerts WHERE dag_id = :d AND run_id = :r LIMIT 1"),
            {"d": r["dag_id"], "r": r["run_id"]},
        ).first()
    if alerted is None:
        alert_failure(engine(), dag_id=r["dag_id"], run_id=r["run_id"], error="the DAG run failed",
                      links=r.get("links") or {})


def record(rec: dict[str, Any]) -> bool:
    """Deliver a record now (after any spooled ones), reconnecting while the warehouse is unreachable; spool it
    when it stays unreachable (or the delivery failed otherwise: a record is never dropped). True when it reached
    the warehouse."""
    from replenish.monitoring.spool import MonitoringSettings, Spool, is_unreachable, spool_folder

    cfg = MonitoringSettings()
    spool = Spool(spool_folder(cfg))
    attempts = max(1, cfg.reconnect_attempts)
    for attempt in range(attempts):
        try:
            spool.flush(deliver)
            deliver(rec)
            return True
        except Exception as exc:
            if not is_unreachable(exc):
                # not the connection (the embedded server failing to start, a bug): keep the record all the same;
                # the spool sets it aside if the warehouse rejects it again
                log.exception("monitoring: %s record not delivered", rec["kind"])
                break
            log.warning("monitoring: warehouse unreachable (attempt %d of %d): %s", attempt + 1, attempts,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            if attempt + 1 < attempts:
                _sleep(cfg.reconnect_delay_seconds * 2 ** attempt)
    path = spool.put(rec)
    log.warning("monitoring: %s record spooled to %s until the warehouse answers again", rec["kind"], path)
    return False


def flush_spool() -> int:
    """Deliver what the spool holds (e.g. from ``replenish status``); 0 when the warehouse is still away."""
    from replenish.monitoring.spool import Spool, is_unreachable, spool_folder

    try:
        return Spool(spool_folder()).flush(deliver)
    except Exception as exc:
        if is_unreachable(exc):
            return 0
        raise


def run_started_at(dag_run: Any, state: str) -> dt.datetime | None:
    """When the run really started. ``dag.test()`` (``replenish run``, the demo) gives a run its logical date as
    start date: the end of the business day, which for replayed history lies days or years back. Such a start
    (at or before the logical date, or in the future) is not a wall-clock time: the running hook's own time
    stands in, and the finishing hooks leave the recorded start alone (None: the run log keeps the first)."""
    start = getattr(dag_run, "start_date", None)
    logical = getattr(dag_run, "logical_date", None)
    now = dt.datetime.now(dt.UTC)
    plausible = start is not None and (logical is None or start > logical) and start <= now + dt.timedelta(minutes=5)
    if plausible:
        return start  # type: ignore[no-any-return]
    return now if state == "running" else None


class MonitoringListener:
    """Records every task attempt and DAG run in the warehouse; alerts once per final failure."""

    # ------------------------------------------------------------------ tasks
    def _task(self, ti: Any, state: str, error: BaseException | str | None = None, *, alert: bool = False) -> None:
        map_index = getattr(ti, "map_index", None)
        map_index = -1 if map_index is None else int(map_index)
        try_number = int(getattr(ti, "try_number", 0) or 0)
        rec: dict[str, Any] = {"kind": "task", "task": {
            "dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "map_index": map_index,
            "try_number": try_number, "max_tries": getattr(ti, "max_tries", None), "state": state,
            "started_at": _when(getattr(ti, "start_date", None)),
            "finished_at": None if state == "running"
            else _when(getattr(ti, "end_date", None) or dt.datetime.now(dt.UTC)),
            "error": _error_text(error),
        }}
        if alert:
            from replenish.monitoring.figures import run_links
            from replenish.settings import get_settings

            rec["alert"] = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "map_index": map_index,
                            "try_number": try_number, "error": None if error is None else str(error),
                            "links": run_links(get_settings(), None)}
        record(rec)

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
            self._task(ti, "failed" if final else "up_for_retry", error, alert=final)
        except Exception:  # noqa: BLE001
            log.exception("monitoring: could not record or alert a failed task")

    # --------------------------------------------------------------- DAG runs
    def _dag_run(self, dag_run: Any, state: str) -> None:
        from replenish.monitoring.figures import run_links
        from replenish.settings import get_settings

        day = business_date_of(getattr(dag_run, "data_interval_start", None),
                               getattr(dag_run, "data_interval_end", None))
        finished = state != "running"
        record({"kind": "dag_run", "dag_run": {
            "dag_id": dag_run.dag_id, "run_id": dag_run.run_id, "business_date": _when(day), "state": state,
            "started_at": _when(run_started_at(dag_run, state)),
            "finished_at": _when(getattr(dag_run, "end_date", None) or dt.datetime.now(dt.UTC)) if finished else None,
            "links": run_links(get_settings(), day, dag_run.dag_id),
        }})

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

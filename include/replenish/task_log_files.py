"""Task log files for the runs that ``dag.test()`` makes (``replenish run``, the demo), where the Airflow UI reads them.

An executor's worker writes each task attempt's log to ``<base_log_folder>/<log_filename_template>``, and the UI's
log view reads that file. ``dag.test()`` runs the tasks in this process without an executor and writes no file, so
a data team opening a task of the demo's run in the UI saw no log at all. :class:`TaskLogFiles`, a listener that
:func:`replenish.orchestration.run_dag` registers for one run, writes the attempt's log records to that path while
the task runs, as JSON lines in the fields the UI renders (timestamp, level, logger, event).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import traceback
from pathlib import Path
from typing import Any

from pluggy import HookimplMarker

hookimpl = HookimplMarker("airflow")
log = logging.getLogger(__name__)


class JsonLines(logging.Formatter):
    """One JSON object per record, in the shape of the Task SDK's own log lines."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        if record.exc_info:
            line["event"] += "\n" + self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def attempt_log_path(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> Path:
    """Where Airflow's file task handler, and so the UI, looks for this attempt's log (the configured folder and
    file name template)."""
    from airflow.configuration import conf
    from jinja2 import Environment, StrictUndefined

    class _TI:  # what the template may name of the task instance
        pass

    ti = _TI()
    ti.__dict__.update(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, try_number=try_number)
    template = conf.get("logging", "log_filename_template")
    rel = Environment(undefined=StrictUndefined, autoescape=False).from_string(template).render(
        ti=ti, try_number=try_number)
    base = Path(conf.get("logging", "base_log_folder")).resolve()
    path = (base / rel).resolve()
    if base not in path.parents:  # run ids come from dag.test, but a template must not write outside the folder
        raise ValueError(f"task log path {path} is outside {base}")
    return path


class TaskLogFiles:
    """Writes each task attempt's log records to its file while ``dag.test()`` runs it in this process."""

    def __init__(self) -> None:
        self.handler: logging.FileHandler | None = None
        self.root_level: int | None = None

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        self.close()
        ti = task_instance
        try:
            path = attempt_log_path(ti.dag_id, ti.run_id, ti.task_id, int(getattr(ti, "map_index", -1)),
                                    int(ti.try_number or 1))
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        except Exception:  # noqa: BLE001 - a log file must never fail the task
            log.warning("no log file for task %s: the Airflow UI will not show its log", ti.task_id, exc_info=True)
            return
        handler.setFormatter(JsonLines())
        handler.setLevel(logging.INFO)
        root = logging.getLogger()
        root.addHandler(handler)
        self.handler = handler
        # Airflow's logging config leaves the root at WARNING, which drops the tasks' INFO records (rows loaded,
        # orders sent) before any handler sees them; the console's handlers keep their own levels
        if root.level > logging.INFO:
            self.root_level = root.level
            root.setLevel(logging.INFO)
        self._note(logging.INFO, f"task {ti.task_id} of {ti.dag_id}, run {ti.run_id}, attempt {ti.try_number}")

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self._note(logging.INFO, f"task {task_instance.task_id} succeeded")
        self.close()

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        why = ("".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()
               if isinstance(error, BaseException) else str(error))
        self._note(logging.ERROR, f"task {task_instance.task_id} failed:\n{why}")
        self.close()

    def _note(self, level: int, message: str) -> None:
        """A line for the file alone: the console already shows the run's progress."""
        if self.handler is not None:
            self.handler.handle(logging.LogRecord(__name__, level, __file__, 0, message, None, None))

    def close(self) -> None:
        if self.root_level is not None:
            logging.getLogger().setLevel(self.root_level)
            self.root_level = None
        if self.handler is not None:
            logging.getLogger().removeHandler(self.handler)
            self.handler.close()
            self.handler = None

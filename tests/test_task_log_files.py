"""The task log files ``replenish run`` writes for the Airflow UI: what a failed attempt leaves, and where."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest


@pytest.fixture
def log_folder(tmp_path, monkeypatch):
    from replenish.orchestration import configure_airflow

    configure_airflow()
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(tmp_path))
    return tmp_path


def _ti(**kw):
    return SimpleNamespace(**{"dag_id": "replenishment_nightly", "run_id": "manual__2019-04-30T22:00:00+00:00",
                              "task_id": "extract", "map_index": -1, "try_number": 2, **kw})


def test_a_failed_attempt_keeps_its_records_and_traceback_in_its_own_file(log_folder):
    from replenish.task_log_files import TaskLogFiles

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)              # as Airflow's logging config leaves it
    files = TaskLogFiles()
    try:
        files.on_task_instance_running(None, _ti())
        logging.getLogger("replenish.extract.loader").info("loaded %d rows", 627)
        try:
            raise ValueError("pos_sales_lines.csv line 3, field quantity: 'lots' is not a number")
        except ValueError as exc:
            files.on_task_instance_failed(None, _ti(), exc)
        assert root.level == logging.WARNING     # the console's level is back
        logging.getLogger("replenish.extract.loader").warning("after the task")
    finally:
        files.close()
        root.setLevel(level)
    path = (log_folder / "dag_id=replenishment_nightly" / "run_id=manual__2019-04-30T22:00:00+00:00"
            / "task_id=extract" / "attempt=2.log")
    lines = [json.loads(raw) for raw in path.read_text().splitlines()]
    events = [ln["event"] for ln in lines]
    assert events[1] == "loaded 627 rows" and lines[1]["logger"] == "replenish.extract.loader"
    assert lines[-1]["level"] == "error" and "ValueError: pos_sales_lines.csv line 3" in events[-1]
    assert "Traceback" in events[-1] and "after the task" not in path.read_text()
    assert all({"timestamp", "level", "logger", "event"} <= set(ln) for ln in lines)


def test_a_mapped_attempt_has_its_map_index_in_the_path(log_folder):
    from replenish.task_log_files import attempt_log_path

    path = attempt_log_path("replenishment_nightly", "r1", "forecast", 3, 1)
    rel = "dag_id=replenishment_nightly/run_id=r1/task_id=forecast/map_index=3/attempt=1.log"
    assert path == log_folder.resolve() / rel


def test_a_run_id_that_climbs_out_of_the_log_folder_is_refused(log_folder):
    from replenish.task_log_files import attempt_log_path

    with pytest.raises(ValueError, match="outside"):
        attempt_log_path("x", "../../../../etc", "t", -1, 1)

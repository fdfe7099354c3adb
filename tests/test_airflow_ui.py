"""`replenish airflow-ui`: the generated airflow.cfg says what the environment says; the UI's environment; a stop ends
every process it started."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replenish.orchestration import UI_ADMIN, write_airflow_cfg


def test_airflow_cfg_names_the_project_dags_plugin_and_database(tmp_path: Path) -> None:
    (tmp_path / "airflow.cfg").write_text(
        "[core]\ndags_folder = /x/airflow/dags\n# plugins_folder =\nload_examples = True\n\n"
        "[database]\nsql_alchemy_conn = sqlite:////x/airflow.db\n")
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__DAGS_FOLDER": "/repo/dags",
           "AIRFLOW__CORE__PLUGINS_FOLDER": "/repo/plugins", "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://postgres@127.0.0.1:54329/replenish_airflow",
           "AIRFLOW__API__PORT": "8080"}
    text = write_airflow_cfg(env).read_text()
    assert "sqlite" not in text and "load_examples = True" not in text
    for line in ("dags_folder = /repo/dags", "plugins_folder = /repo/plugins", "load_examples = False",
                 "sql_alchemy_conn = postgresql+psycopg2://postgres@127.0.0.1:54329/replenish_airflow",
                 "[api]", "port = 8080"):
        assert line in text, line
    assert write_airflow_cfg(env).read_text() == text  # idempotent


def test_ui_environment_signs_in_the_demo_admin(tmp_path: Path, monkeypatch) -> None:
    from replenish import orchestration

    monkeypatch.setattr(orchestration, "airflow_env", lambda settings=None: {"AIRFLOW_HOME": str(tmp_path)})
    env, password = orchestration.airflow_ui_env(port=8399)
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{UI_ADMIN}:admin"
    stored = json.loads(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())
    assert stored == {UI_ADMIN: password} and len(password) >= 12
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:8399"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == orchestration.airflow_ui_env(port=8399)[0][
        "AIRFLOW__API_AUTH__JWT_SECRET"]  # one secret for every process and restart


@pytest.mark.slow
def test_sigterm_to_the_process_group_ends_every_airflow_process() -> None:
    """`replenish airflow-ui` stopped as a container or a CI job stops it (SIGTERM to its process group): nothing it
    started lives on. Before, the scheduler's LocalExecutor workers got the signal with their scheduler, which was
    killed while it waited for them, and stayed behind as orphans."""
    import psutil

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    proc = subprocess.Popen([sys.executable, "-c", "from replenish.cli import app; app()", "airflow-ui", "--port",
                             str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        assert "Airflow UI:" in proc.stdout.readline(), "the UI did not start"
        deadline = time.monotonic() + 120
        tree: list[psutil.Process] = []
        while time.monotonic() < deadline:
            tree = psutil.Process(proc.pid).children(recursive=True)
            # Airflow's default of 32 workers, forked at once: the scheduler's shutdown outlasted the stop's wait
            if sum("LocalExecutor" in " ".join(p.cmdline()) for p in tree if p.is_running()) >= 8:
                time.sleep(1)
                tree = psutil.Process(proc.pid).children(recursive=True)
                break
            time.sleep(1)
        else:
            raise AssertionError(f"no LocalExecutor workers: {[p.cmdline() for p in tree]}")
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(tree, timeout=10)
        assert not alive, [" ".join(p.cmdline()) for p in alive]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

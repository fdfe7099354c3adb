"""`replenish airflow-ui`: the generated airflow.cfg says what the environment says; the UI's environment."""

from __future__ import annotations

import json
from pathlib import Path

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

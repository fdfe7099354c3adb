"""DAG policy: every DAG imports cleanly and follows the project's rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from replenish.orchestration import configure_airflow

    configure_airflow()
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_imports_clean(dagbag):
    assert dagbag.import_errors == {}
    assert "replenishment_nightly" in dagbag.dags


def test_owner_tags_retries_static_start(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.default_args.get("owner") not in (None, "airflow"), dag_id
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.default_args.get("retries", 0) >= 1, f"{dag_id} has no retries"
        assert dag.start_date is not None and dag.start_date.year < 2025, dag_id
        assert dag.catchup is False, f"{dag_id}: catchup would order for past dates"


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_no_dynamic_start_date_or_top_level_project_imports(path):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                assert not name.startswith(("replenish", "ml", "pandas", "sqlalchemy")), (
                    f"{path.name}: '{name}' imported at parse time"
                )
    src = path.read_text()
    assert "datetime.now(" not in src and "days_ago" not in src

"""``ml`` is the pure forecasting library: no module of it imports ``replenish``, a database driver or SQLAlchemy,
at module level, inside a function or under TYPE_CHECKING alike (``replenish.forecasting`` is where the two meet),
and importing it changes nothing in the process's environment."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ML = Path(__file__).resolve().parents[1] / "ml"
FORBIDDEN = {"replenish", "sqlalchemy", "psycopg2", "psycopg"}


def _imported_roots(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import anywhere in the module, also ``importlib.import_module``
    and ``__import__`` with a literal name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def test_the_check_sees_imports_inside_functions_and_type_checking_blocks():
    src = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sqlalchemy.engine import Engine\n"
           "def f():\n    from replenish.bulk import copy_frame\n    import importlib\n"
           "    importlib.import_module('psycopg2')\n")
    assert {root for _, root in _imported_roots(ast.parse(src))} & FORBIDDEN == {"sqlalchemy", "replenish",
                                                                                  "psycopg2"}


@pytest.mark.parametrize("path", sorted(ML.rglob("*.py")), ids=lambda p: str(p.relative_to(ML.parent)))
def test_ml_imports_neither_replenish_nor_sql(path: Path):
    bad = [f"{path.relative_to(ML.parent)}:{line} imports {root}"
           for line, root in _imported_roots(ast.parse(path.read_text())) if root in FORBIDDEN]
    assert not bad, "; ".join(bad)


def test_importing_ml_sets_no_environment_variable():
    # in a fresh interpreter without OMP_WAIT_POLICY (which ml/__init__ used to set; the entry points set it now)
    code = ("import importlib, json, os, pkgutil\n"
            "before = dict(os.environ)\n"
            "import ml\n"
            "for m in pkgutil.iter_modules(ml.__path__):\n"
            "    importlib.import_module('ml.' + m.name)\n"
            "print(json.dumps({k: v for k, v in os.environ.items() if before.get(k) != v}))\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ML.parent, capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == {}

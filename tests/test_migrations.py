"""Schema migrations: an empty database and one built by the release before migrations both reach head, with
the same schema as that release built (``pg_dump --schema-only`` compared), data kept, concurrent upgrades safe.

``previous_release_schema.sql`` is ``pg_dump --schema-only`` of a database built by release 0.1.0's
``ensure_*`` functions (commit 9be2f6a) on an empty database; the tests restore it with ``psql`` to get a
database "at the previous release".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from replenish import migrations
from replenish.database import database_url, sqlalchemy_url, url_parts
from replenish.embedded_pg import binary

PREVIOUS = Path(__file__).parent / "previous_release_schema.sql"
PREFIX = "replenish_test_mig_"


def _url(name: str) -> str:
    return database_url().rsplit("/", 1)[0] + "/" + name


def _fresh(name: str) -> Engine:
    admin = create_engine(sqlalchemy_url(database_url()), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PREFIX}{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{PREFIX}{name}"'))
    admin.dispose()
    return create_engine(sqlalchemy_url(_url(PREFIX + name)), future=True)


def _client(program: str, eng: Engine, *args: str, stdin: str | None = None) -> str:
    p = url_parts(_url(str(eng.url.database)))
    res = subprocess.run([binary(program), "-h", p["host"], "-p", str(p["port"]), "-U", p["user"], *args,
                          p["dbname"]], input=stdin, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def schema_dump(eng: Engine) -> str:
    out = _client("pg_dump", eng, "--schema-only", "--exclude-table=public.alembic_version")
    # \restrict carries a random key per dump
    return "\n".join(line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def at_previous_release(name: str) -> Engine:
    eng = _fresh(name)
    # without the dump's session SETs: a server older than the pg_dump that wrote them may not know one of them
    sql = "\n".join(line for line in PREVIOUS.read_text().splitlines() if not line.startswith("SET "))
    _client("psql", eng, "-q", "-v", "ON_ERROR_STOP=1", stdin=sql)
    return eng


@pytest.fixture(scope="module")
def engines() -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for e in made:
        e.dispose()
    admin = create_engine(sqlalchemy_url(database_url()), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for e in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{e.url.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def previous_dump(engines: list[Engine]) -> str:
    """The previous release's schema brought to head: what an empty database must become too (the baseline is
    that release's DDL verbatim; later revisions apply to both alike)."""
    eng = at_previous_release("reference")
    engines.append(eng)
    migrations.upgrade(eng)
    return schema_dump(eng)


def test_the_cheap_head_is_alembics_head():
    assert migrations.head() == migrations.alembic_head()


def test_an_empty_database_upgrades_to_the_schema_of_the_previous_release_at_head(engines, previous_dump):
    eng = _fresh("empty")
    engines.append(eng)
    result = migrations.upgrade(eng)
    assert (result.before, result.after) == (None, migrations.head())
    assert result.applied[0] == "0001" and result.applied[-1] == migrations.head()
    assert schema_dump(eng) == previous_dump
    again = migrations.upgrade(eng)
    assert (again.before, again.applied) == (migrations.head(), [])


DATA = """
INSERT INTO raw.load_batches VALUES ('8a0c6b2e-0a64-4c55-9d7b-1f0c1c1f0001', '2019-04-29', 'csv', 'pos_sales_lines',
    'pos/sales_lines.csv', 3, 3, 0, '2019-04-30 01:00+00');
INSERT INTO ops.stage_results (run_id, business_date, stage, status, summary)
    VALUES ('r1', '2019-04-29', 'extract', 'success', '{"rows": 3}');
INSERT INTO forecast.models (version, params, feature_config, backtest_metrics, backtest_wape, artifact_path,
    is_current) VALUES ('v1', '{}', '{}', '{"wape": 0.3}', 0.3, '/models/v1', true);
INSERT INTO platform.users (username, email, role, password_hash) VALUES ('anna', 'anna@example.com', 'buyer', 'x');
INSERT INTO orders.purchase_orders (order_id, store_id, supplier_id, delivery_date, order_date)
    VALUES ('PO-1', '1', '10', '2019-05-01', '2019-04-30');
INSERT INTO orders.order_lines (order_id, item_id, proposed_qty, final_qty) VALUES ('PO-1', '100', 4, 5);
INSERT INTO orders.order_events (order_id, actor, event) VALUES ('PO-1', 'system:propose', 'created');
"""
KEPT = {
    "raw.load_batches": "SELECT batch_id::text, rows_loaded FROM raw.load_batches",
    "ops.stage_results": "SELECT run_id, summary::text FROM ops.stage_results",
    "forecast.models": "SELECT version, is_current FROM forecast.models",
    "platform.users": "SELECT user_id, username FROM platform.users",
    # ids compared as text: they were text in the orders of that release and are integers now (revision 0003)
    "orders.purchase_orders": "SELECT order_id, store_id::text, supplier_id::text FROM orders.purchase_orders",
    "orders.order_lines": "SELECT order_id, item_id::text, final_qty FROM orders.order_lines",
    "orders.order_events": "SELECT event_id, event FROM orders.order_events",
}


def test_a_database_of_the_previous_release_upgrades_with_its_data(engines, previous_dump):
    eng = at_previous_release("previous")
    engines.append(eng)
    with eng.begin() as conn:
        conn.exec_driver_sql(DATA)
        before = {t: conn.exec_driver_sql(q).all() for t, q in KEPT.items()}
    assert all(before.values())
    result = migrations.upgrade(eng)
    assert (result.before, result.after) == (None, migrations.head())
    with eng.connect() as conn:
        assert {t: conn.exec_driver_sql(q).all() for t, q in KEPT.items()} == before
        assert migrations.current(conn) == migrations.head()
    assert schema_dump(eng) == previous_dump


def test_every_store_supplier_and_item_id_column_is_an_integer(engines):
    """One id type per key end to end: the tables the application writes hold the warehouse's integer keys."""
    eng = at_previous_release("idtypes")
    engines.append(eng)
    migrations.upgrade(eng)
    with eng.connect() as conn:
        types = conn.exec_driver_sql(
            """SELECT table_schema || '.' || table_name || '.' || column_name, data_type
            FROM information_schema.columns WHERE column_name IN ('store_id', 'supplier_id', 'item_id')
              AND table_schema IN ('raw', 'ops', 'forecast', 'orders', 'platform')"""
        ).all()
    assert len(types) >= 10
    assert {col: kind for col, kind in types if kind != "integer"} == {}


def test_orders_with_an_id_that_is_not_an_integer_stop_the_upgrade(engines):
    eng = at_previous_release("textids")
    engines.append(eng)
    with eng.begin() as conn:
        conn.exec_driver_sql("""INSERT INTO orders.purchase_orders (order_id, store_id, supplier_id, delivery_date,
            order_date) VALUES ('PO-X', 'B001', '10', '2019-05-01', '2019-04-30')""")
    with pytest.raises(Exception, match="B001"):
        migrations.upgrade(eng)
    with eng.connect() as conn:  # nothing half-done: the orders keep their text ids, the revision is not recorded
        assert conn.exec_driver_sql("SELECT store_id FROM orders.purchase_orders").scalar() == "B001"
        assert migrations.current(conn) != migrations.head()


def test_a_store_scope_that_is_not_an_integer_stops_the_upgrade(engines):
    eng = at_previous_release("textscopes")
    engines.append(eng)
    with eng.begin() as conn:
        conn.exec_driver_sql("""INSERT INTO platform.users (user_id, username, email, role, password_hash)
            VALUES (7, 'mia', 'mia@example.com', 'store_manager', 'x');
            INSERT INTO platform.user_scopes VALUES (7, 'store', 'B001'), (7, 'category', 'bread')""")
    with pytest.raises(RuntimeError, match="1 store or supplier scopes .* are not integer ids"):
        migrations.upgrade(eng)
    with eng.connect() as conn:
        assert migrations.current(conn) != migrations.head()


def test_concurrent_upgrades_apply_each_revision_once(engines):
    eng = _fresh("concurrent")
    engines.append(eng)
    others = [create_engine(eng.url) for _ in range(3)]
    results, errors = [], []

    def run(e: Engine) -> None:
        try:
            results.append(migrations.upgrade(e).applied)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in others:
        e.dispose()
    assert errors == []
    # one upgrade applied every revision; those that waited on the advisory lock found the database at head
    applied = sorted(results, key=len)
    assert applied[:2] == [[], []] and applied[2][0] == "0001" and applied[2][-1] == migrations.head()


def test_ensure_current_checks_once_per_process(engines):
    eng = _fresh("once")
    engines.append(eng)
    migrations.forget()
    statements: list[str] = []
    event.listen(eng, "before_cursor_execute", lambda *a: statements.append(a[2]))
    migrations.ensure_current(eng)
    assert statements, "the first call checks (and here upgrades) the database"
    statements.clear()
    with eng.begin() as conn:
        migrations.ensure_current(conn)
    migrations.ensure_current(eng)
    assert statements == []
    with eng.connect() as conn:
        assert migrations.current(conn) == migrations.head()


def test_a_database_newer_than_the_release_is_refused(engines):
    eng = next(e for e in engines if e.url.database == PREFIX + "once")
    with eng.begin() as conn:
        conn.exec_driver_sql("UPDATE public.alembic_version SET version_num = '9999_from_the_future'")
    try:
        with pytest.raises(RuntimeError, match="9999_from_the_future"):
            migrations.upgrade(eng)
    finally:
        with eng.begin() as conn:
            conn.exec_driver_sql(f"UPDATE public.alembic_version SET version_num = '{migrations.head()}'")


def test_the_raw_tables_match_the_extract_contract(engines):
    """The loader writes the contract's columns: a contract change needs a migration, and this test says so."""
    from replenish.extract import ENTITIES
    from replenish.extract.schema import META_COLUMNS

    eng = next(e for e in engines if e.url.database == PREFIX + "empty")
    with eng.connect() as conn:
        for spec in ENTITIES:
            cols = conn.execute(text("SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw'"
                                     " AND table_name = :t ORDER BY ordinal_position"), {"t": spec.name}).scalars()
            assert list(cols) == [*spec.column_names, *META_COLUMNS, "_loaded_at"], spec.name


def test_db_upgrade_prints_one_json_document(engines):
    eng = _fresh("cli")
    engines.append(eng)
    env = {**os.environ, "REPLENISH_DATABASE_URL": _url(str(eng.url.database))}
    cmd = [sys.executable, "-m", "replenish.cli", "db", "upgrade", "--json"]
    first = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)
    assert first["before"] is None and first["after"] == migrations.head() and "0001" in first["applied"]
    second = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)
    assert second["before"] == second["after"] == migrations.head() and second["applied"] == []


DDL = re.compile(r"\b(create|alter)\s+(or\s+replace\s+)?(unique\s+)?(table|schema|index|view|trigger|function|sequence|"
                 r"type|materialized)\b", re.I)
# Not the application's schemas: the simulated merchandise system that MmsDatabaseConnector reads (a source
# system, like the export files). benchmarks/ is not the application either (the web bench's stand-in marts).
NOT_APPLICATION_DDL = {"include/replenish/extract/connectors.py"}


def test_ddl_lives_only_in_the_migrations():
    root = Path(__file__).resolve().parent.parent
    found = []
    for folder in ("include", "ml", "plugins", "dags"):
        for path in (root / folder).rglob("*.py"):
            rel = path.relative_to(root).as_posix()
            if rel.startswith("include/replenish/migrations/") or rel in NOT_APPLICATION_DDL:
                continue
            found += [f"{rel}: {m.group(0)}" for m in DDL.finditer(path.read_text())]
    assert found == []


def test_entry_points_migrate_a_new_database(engines):
    """`replenish serve`'s app and a CLI command that touches the database (here `users list`) bring it to head."""
    from replenish.platform.app import create_app

    served = _fresh("serve")
    engines.append(served)
    create_app(engine=served, dispatch=lambda *_: {})
    cli = _fresh("users")
    engines.append(cli)
    env = {**os.environ, "REPLENISH_DATABASE_URL": _url(str(cli.url.database))}
    subprocess.run([sys.executable, "-m", "replenish.cli", "users", "list", "--json"], env=env, check=True,
                   capture_output=True)
    for eng in (served, cli):
        with eng.connect() as conn:
            assert migrations.current(conn) == migrations.head()

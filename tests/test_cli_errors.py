"""Bad arguments to the CLI: one line on stderr, exit code 2, no traceback; unknown ids refused.

Through typer's CliRunner (in-process) against a database of its own (``replenish_cli_test``) whose marts
dimensions hold a few stores, suppliers and item categories, plus the installed ``replenish`` script in a
subprocess for the issue's two tracebacks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

DATABASE = "replenish_cli_test"
DIMS = """
CREATE SCHEMA marts;
CREATE TABLE marts.dim_stores (store_id integer PRIMARY KEY, store_name text NOT NULL);
CREATE TABLE marts.dim_suppliers (supplier_id integer PRIMARY KEY, supplier_name text NOT NULL);
CREATE TABLE marts.dim_items (item_id integer, category text, snapshot_date date);
INSERT INTO marts.dim_stores VALUES (1, 'Altstadt'), (2, 'Hafen');
INSERT INTO marts.dim_suppliers VALUES (10, 'Mehlwerk'), (11, 'Molkerei');
INSERT INTO marts.dim_items VALUES (100, 'bread', '2019-04-29'), (101, 'pastry', '2019-04-29');
"""


@pytest.fixture(scope="module")
def cli_db() -> Iterator[Any]:
    """The CLI's settings point at a fresh database with small marts dimensions for this module."""
    from support.databases import scratch_database

    from replenish.database import sqlalchemy_url
    from replenish.settings import get_settings

    url = scratch_database(DATABASE)
    eng = create_engine(sqlalchemy_url(url), future=True)
    with eng.begin() as conn:
        conn.exec_driver_sql(DIMS)
    before = os.environ.get("REPLENISH_DATABASE_URL")
    os.environ["REPLENISH_DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        yield eng
    finally:
        if before is None:
            os.environ.pop("REPLENISH_DATABASE_URL", None)
        else:
            os.environ["REPLENISH_DATABASE_URL"] = before
        get_settings.cache_clear()
        eng.dispose()


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    from replenish.cli import app

    return CliRunner().invoke(app, list(args), env=env, prog_name="replenish")


def assert_refused(result: Any, *needles: str) -> str:
    """Exit code 2 and exactly one line on stderr naming the command; returns that line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("replenish") and ": error: " in line, line
    assert "Traceback" not in result.output and "\x1b" not in result.output
    for n in needles:
        assert n in line, (n, line)
    return line


# --------------------------------------------------------------------------------------- the two tracebacks
def _script(*args: str, **env: str) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name("replenish"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def test_issue_cases_through_the_installed_script(tmp_path: Path) -> None:
    p = _script("status", "--limit", "-1")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "Traceback" not in p.stderr
    assert p.stderr.startswith("replenish status: error: ") and "--limit" in p.stderr
    p = _script("ingest", "--date", "2031-01-01", REPLENISH_EXPORTS_ROOT=str(tmp_path))
    assert p.returncode == 2 and p.stdout == "" and "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no exports for business date 2031-01-01" in lines[0], p.stderr


@pytest.mark.parametrize("limit", ["-1", "0", "1001", "abc", "1e3"])
def test_status_limit_out_of_range(limit: str) -> None:
    assert_refused(invoke("status", "--limit", limit), "--limit")


def test_status_limit_in_range(cli_db) -> None:
    r = invoke("status", "--limit", "1")
    assert r.exit_code == 0, r.output


def test_ingest_refuses_dates_and_folders_without_exports(tmp_path: Path) -> None:
    env = {"REPLENISH_EXPORTS_ROOT": str(tmp_path)}
    assert_refused(invoke("ingest", "--date", "2031-01-01", env=env), "2031-01-01", "--date")
    assert_refused(invoke("ingest", "--date", "2031-02-30", env=env), "expected YYYY-MM-DD", "'2031-02-30'")
    assert_refused(invoke("ingest", "--date", "2019-04-29", "--source", str(tmp_path / "missing")), "--source")
    # a hostile argument cannot drive the terminal: control characters come out escaped
    line = assert_refused(invoke("ingest", "--date", "\x1b[2J\x1b]0;owned\x07\n2019"), "--date")
    assert "\\x1b[2J" in line and "\\n" in line


def test_build_refuses_a_date_with_nothing_loaded(cli_db) -> None:
    assert_refused(invoke("build", "--date", "2031-01-01"), "nothing loaded for business date 2031-01-01")
    assert_refused(invoke("build", "--date", "someday"), "expected YYYY-MM-DD")


def test_run_refuses_a_dag_it_does_not_run_and_accuracy_a_bad_window() -> None:
    assert_refused(invoke("run", "--date", "2019-04-30", "--dag", "order_dispatch"), "--dag", "forecast_training")
    assert_refused(invoke("accuracy", "--days", "0"), "--days")
    assert_refused(invoke("accuracy", "--date", "yesterday"), "expected YYYY-MM-DD")


def test_run_refuses_a_night_without_exports_before_the_clock_moves(cli_db, tmp_path: Path) -> None:
    """It retried its extract for 22 minutes (logs on stdout), having moved a set clock on to that night first."""
    from replenish import clock

    before = clock.describe()
    env = {"REPLENISH_EXPORTS_ROOT": str(tmp_path)}
    assert_refused(invoke("run", "--date", "2031-01-01", env=env), "no exports for business date 2031-01-01", "--date")
    assert_refused(invoke("run", "--date", "2031-01-01", "--to", "2031-01-03", env=env), "and 2 more dates")
    assert clock.describe()["now"][:13] == before["now"][:13]    # not moved to 2031 (a running clock moves on)


def test_ingest_of_an_unreadable_export_file_is_one_line(tmp_path: Path) -> None:
    """A fatal file (here: the day's sales file missing from its folder) printed a 100-line traceback and exit 1."""
    day = tmp_path / "2031-01-01" / "pos"
    day.mkdir(parents=True)
    (day / "other.csv").write_text("store_id\n1\n")
    line = assert_refused(invoke("ingest", "--date", "2031-01-01", "--source", str(tmp_path)), "--source",
                          "nothing of 2031-01-01 was loaded")
    assert "sales_lines.csv: file is missing" in line


def test_ingest_names_the_quarantined_rows(cli_db, tmp_path: Path) -> None:
    """It printed only how many rows were quarantined: a person had to query raw.quarantine to learn which."""
    import json

    from support.extract_fixtures import write_export_day

    day = "2031-01-02"
    write_export_day(tmp_path, day, {"pos/sales_lines.csv": (
        "receipt_id,store_id,item_id,sold_at,quantity,unit_price,amount,weekday\n"
        f"R1,1,100,{day}T09:15:00+02:00,2,1.49,2.98,Thu\n"
        f"R2,1,101,{day}T10:30:00+02:00,\x1b[2Jtwo,0.99,0.99,Thu\n")})
    r = invoke("ingest", "--date", day, "--source", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "quarantined rows:" in r.stdout and "\x1b" not in r.stdout
    row = next(ln for ln in r.stdout.splitlines() if "sales_lines.csv" in ln)
    assert f"{day}/pos/sales_lines.csv" in row and " 3 " in row and "quantity" in row and "\\x1b[2Jtwo" in row
    p = _script("ingest", "--date", day, "--source", str(tmp_path), "--json",
                REPLENISH_DATABASE_URL=os.environ["REPLENISH_DATABASE_URL"])
    assert p.returncode == 0, p.stderr[-2000:]
    doc = json.loads(p.stdout)
    assert doc["rows_quarantined"] == 1 and "quarantine_note" not in doc
    (q,) = doc["quarantined_rows"]
    assert q["file"].endswith(f"{day}/pos/sales_lines.csv") and q["line"] == 3 and q["field"] == "quantity"
    assert "not a number" in q["reason"] and q["business_date"] == day


def test_accuracy_before_the_warehouse_is_built_says_so(cli_db) -> None:
    import json

    p = _script("accuracy", "--date", "2019-04-30", "--json")     # --json writes to fd 1: a process of its own
    assert p.returncode == 0, p.stderr[-2000:]
    doc = json.loads(p.stdout)
    assert doc["status"] == "no data" and "not built" in doc["note"] and doc["overall"]["rows"] == 0
    r = invoke("accuracy", "--date", "2019-04-30")
    assert r.exit_code == 0 and "No forecast can be scored: the warehouse is not built yet" in r.stdout


def test_unknown_command_and_option_are_one_line() -> None:
    assert_refused(invoke("nope"), "No such command")
    assert_refused(invoke("status", "--nope"), "--nope")


# ------------------------------------------------------------------------------------------ users, api keys
def _user_exists(eng: Any, username: str) -> bool:
    with eng.connect() as conn:
        if conn.exec_driver_sql("SELECT to_regclass('platform.users') IS NULL").scalar():
            return False
        row = conn.execute(text("SELECT 1 FROM platform.users WHERE username = :u"), {"u": username}).first()
        return row is not None


def _active_keys(eng: Any, name: str) -> int:
    with eng.connect() as conn:
        if conn.exec_driver_sql("SELECT to_regclass('platform.api_keys') IS NULL").scalar():
            return 0
        return int(conn.execute(
            text("SELECT count(*) FROM platform.api_keys WHERE name = :n AND revoked_at IS NULL"), {"n": name}
        ).scalar_one())


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--role", "store_manager", "--store", "999"], ["unknown store id 999 ", "marts.dim_stores"]),
        (["--role", "store_manager", "--store", "1", "--store", "998", "--store", "999"], ["ids 998, 999 "]),
        (["--role", "buyer", "--supplier", "77"], ["unknown supplier id 77 ", "marts.dim_suppliers"]),
        # store and supplier ids are integers: anything else is refused before the database is asked
        (["--role", "store_manager", "--store", "S1"], ["Invalid value for '--store'", "a whole number), got 'S1'"]),
        (["--role", "buyer", "--supplier", "<b>"], ["Invalid value for '--supplier'", "got '<b>'"]),
        (["--role", "store_manager", "--store", "-1"], ["Invalid value for '--store'", "got '-1'"]),
        (["--role", "store_manager", "--store", "99999999999"], ["Invalid value for '--store'", "got '99999999999'"]),
        (["--role", "buyer", "--category", "cakes"], ["unknown category id 'cakes'", "marts.dim_items"]),
        (["--role", "buyer", "--supplier", "10", "--category", "<b>"], ["'<b>'"]),
        (["--role", "store_manager"], ["needs at least one --store"]),
        (["--role", "buyer"], ["--supplier or --category"]),
        (["--role", "buyer", "--supplier", "10", "--store", "1"], ["--store does not apply"]),
        (["--role", "store_manager", "--store", "1", "--supplier", "10"], ["do not apply"]),
        (["--role", "admin", "--store", "1"], ["an admin sees everything"]),
        (["--role", "chief"], ["must be one of admin, buyer, store_manager"]),
        (["--role", "admin", "--email", "a@b.example\r\nBcc: x@evil.example"], ["not an e-mail address"]),
    ],
)
def test_users_add_refuses_unknown_ids_and_bad_scopes(cli_db, args: list[str], needles: list[str]) -> None:
    assert_refused(invoke("users", "add", "cli-refused", *args), *needles)
    assert not _user_exists(cli_db, "cli-refused")


@pytest.mark.parametrize("username", ['<b id="x">', "a b", "", "-leading-dash", "x" * 151, "tab\tname"])
def test_users_add_refuses_unusable_names(cli_db, username: str) -> None:
    r = invoke("users", "add", username, "--role", "admin")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert not _user_exists(cli_db, username)


def test_users_add_with_known_ids(cli_db) -> None:
    r = invoke("users", "add", "cli-manager", "--role", "store_manager", "--store", "1", "--store", "2",
               "--store", "1")
    assert r.exit_code == 0, r.output
    assert _user_exists(cli_db, "cli-manager")
    with cli_db.connect() as conn:
        scopes = conn.execute(text(
            "SELECT scope_value FROM platform.user_scopes JOIN platform.users USING (user_id) "
            "WHERE username = 'cli-manager' ORDER BY 1")).scalars().all()
    assert scopes == ["1", "2"]
    r = invoke("users", "add", "cli-buyer", "--role", "buyer", "--supplier", "11", "--category", "bread")
    assert r.exit_code == 0, r.output
    r = invoke("users", "add", "anna@shop.example", "--role", "buyer", "--supplier", "10")
    assert r.exit_code == 0, r.output  # a name that is an address is its own e-mail
    assert_refused(invoke("users", "add", "cli-buyer", "--role", "buyer", "--supplier", "11"), "exists")


def test_users_disable_then_enable(cli_db) -> None:
    assert invoke("users", "add", "cli-toggle", "--role", "admin").exit_code == 0

    def active() -> bool:
        with cli_db.connect() as conn:
            return bool(conn.execute(text("SELECT is_active FROM platform.users WHERE username = 'cli-toggle'"))
                        .scalar_one())

    r = invoke("users", "disable", "cli-toggle", "--json")
    assert r.exit_code == 0, r.output
    assert not active()
    r = invoke("users", "enable", "cli-toggle", "--json")
    assert r.exit_code == 0, r.output
    assert active()
    assert_refused(invoke("users", "enable", "nobody-here"), "no user 'nobody-here'")


def test_users_reset_password_gives_a_new_one_and_ends_the_old_sessions(cli_db) -> None:
    """A store manager forgot the password: the admin had no command for it (``users add`` says the user exists)."""
    from replenish.platform.accounts import authenticate, get_user
    from replenish.platform.sessions import create_session, session_user

    r = invoke("users", "add", "cli-forgetful", "--role", "store_manager", "--store", "1")
    assert r.exit_code == 0, r.output
    old = r.stdout.split()[-1]
    with cli_db.begin() as conn:
        token, _ = create_session(conn, get_user(conn, "cli-forgetful"), 8)
    r = invoke("users", "reset-password", "cli-forgetful")
    assert r.exit_code == 0, r.output
    name, new = r.stdout.split()  # as `users add`: the name and the password on stdout, what it is on stderr
    assert name == "cli-forgetful" and new != old and "1 open session(s) ended" in r.stderr
    with cli_db.begin() as conn:
        assert authenticate(conn, "cli-forgetful", old) is None
        assert authenticate(conn, "cli-forgetful", new) is not None
        assert session_user(conn, token) is None
    assert invoke("users", "reset-password", "cli-forgetful", "--json").exit_code == 0
    assert_refused(invoke("users", "reset-password", "nobody-here"), "no user 'nobody-here'")


def test_api_keys_create_refuses_unknown_stores(cli_db) -> None:
    assert_refused(invoke("api-keys", "create", "till-x", "--store", "999"), "unknown store id 999 ")
    assert_refused(invoke("api-keys", "create", "till-x", "--store", "S1"), "Invalid value for '--store'", "got 'S1'")
    assert _active_keys(cli_db, "till-x") == 0
    assert_refused(invoke("api-keys", "create", "till x<b>", "--store", "1"), "key name")
    r = invoke("api-keys", "create", "till-x", "--store", "2")
    assert r.exit_code == 0, r.output
    assert _active_keys(cli_db, "till-x") == 1
    assert_refused(invoke("api-keys", "create", "till-x", "--store", "2"), "exists")
    assert_refused(invoke("api-keys", "revoke", "no-such-key"), "no active API key")


def test_unbuilt_dimension_is_a_clear_refusal(cli_db) -> None:
    from replenish.platform.known_ids import UnknownIds, unknown

    with cli_db.connect() as conn:  # rolled back: the rename never reaches other tests
        conn.exec_driver_sql("ALTER TABLE marts.dim_suppliers RENAME TO dim_suppliers_gone")
        with pytest.raises(UnknownIds, match="marts.dim_suppliers is not built yet"):
            unknown(conn, "supplier", [10])
        conn.rollback()
    assert_refused(invoke("users", "add", "cli-late", "--role", "buyer", "--supplier", "10", "--supplier", "12"),
                   "unknown supplier id 12 ")

"""The embedded server (replenish.embedded_pg) as a user meets it across settings changes: a server left running
on one port is found where it is, not looked for on the port the setting names now."""

from __future__ import annotations

import socket

import psycopg2
import pytest

from replenish import embedded_pg
from replenish.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listen_on(port: int) -> socket.socket:
    """Another server on ``port``. SO_REUSEADDR as servers set it: an earlier test server's closed connections leave
    the port in TIME_WAIT, which stops a plain bind (CI failed so) but not a server's."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)                                  # never accepts: each port check's connection waits in this queue
    return s


@pytest.fixture
def first(tmp_path):
    settings = Settings(state_dir=tmp_path / "state", database_url=None, embedded_port=_free_port())
    embedded_pg.start(settings)
    yield settings
    embedded_pg.stop(settings)


def test_a_server_running_on_another_port_is_used_where_it_runs(first, caplog):
    moved = first.model_copy(update={"embedded_port": _free_port()})
    st = embedded_pg.status(moved)
    assert st.running and st.port == first.embedded_port
    with caplog.at_level("WARNING", logger="replenish.embedded_pg"):
        again = embedded_pg.start(moved)
    assert again.port == first.embedded_port and again.pid == st.pid          # reused, not a second server
    assert f"already runs on port {first.embedded_port}" in caplog.text
    conn = psycopg2.connect(again.url(moved.embedded_database))
    conn.close()


def test_a_stopped_server_reports_the_configured_port(first):
    embedded_pg.stop(first)
    moved = first.model_copy(update={"embedded_port": _free_port()})
    st = embedded_pg.status(moved)
    assert not st.running and st.port == moved.embedded_port


def test_a_pid_file_naming_another_process_is_not_a_running_server(tmp_path):
    """After a reboot the pid in a stale postmaster.pid may belong to any process (here: this test's)."""
    import os

    settings = Settings(state_dir=tmp_path / "state", database_url=None, embedded_port=_free_port())
    settings.pgdata_dir.mkdir(parents=True)
    (settings.pgdata_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{settings.pgdata_dir}\n0\n54321\n")
    st = embedded_pg.status(settings)
    assert not st.running and st.pid is None and st.port == settings.embedded_port


def test_a_pid_file_naming_another_postgres_does_not_block_the_start(tmp_path):
    """A stale pid may name another PostgreSQL (the machine's own, another checkout's): it is not this directory's
    server, and the start goes on instead of the postmaster refusing its lock file."""
    import os
    import shutil
    import subprocess

    fake = tmp_path / "bin" / "postgres"              # a process named postgres, working in another directory
    fake.parent.mkdir()
    shutil.copy(shutil.which("sleep") or "/bin/sleep", fake)
    elsewhere = tmp_path / "other-pgdata"
    elsewhere.mkdir()
    other = subprocess.Popen([str(fake), "60"], cwd=elsewhere)
    settings = Settings(state_dir=tmp_path / "state", database_url=None, embedded_port=_free_port())
    try:
        embedded_pg.start(settings)
        embedded_pg.stop(settings)
        (settings.pgdata_dir / "postmaster.pid").write_text(
            f"{other.pid}\n{settings.pgdata_dir}\n0\n{settings.embedded_port}\n")
        assert not embedded_pg.status(settings).running
        st = embedded_pg.start(settings)
        assert st.running and st.pid != other.pid and os.path.exists(settings.pgdata_dir / "postmaster.pid")
        psycopg2.connect(st.url(settings.embedded_database)).close()
    finally:
        embedded_pg.stop(settings)
        other.kill()
        other.wait()


def test_the_default_port_held_by_another_server_starts_on_a_free_one(tmp_path, caplog):
    """A fresh clone's `make demo` beside another checkout's running server: without REPLENISH_EMBEDDED_PORT it
    starts on a free port, which every later call finds; with the setting given, a taken port stays an error."""
    default = Settings.model_fields["embedded_port"].default
    holder = None
    if not embedded_pg._port_in_use(default):        # the suite's own server usually holds it; if not, hold it
        holder = _listen_on(default)
    settings = Settings(state_dir=tmp_path / "state", database_url=None)
    assert "embedded_port" not in settings.model_fields_set
    try:
        with caplog.at_level("WARNING", logger="replenish.embedded_pg"):
            st = embedded_pg.start(settings)
            assert st.running and st.port != default
            assert f"port 127.0.0.1:{default} is taken by another server" in caplog.text
            caplog.clear()
            again = embedded_pg.start(settings)             # a later process: the same server, no warning
        assert again.port == st.port and again.pid == st.pid and caplog.text == ""
        conn = psycopg2.connect(again.url(settings.embedded_database))
        conn.close()
        embedded_pg.stop(settings)
        chosen = settings.model_copy(update={"embedded_port": default})
        with pytest.raises(RuntimeError, match=f"port 127.0.0.1:{default} is taken by another server"):
            embedded_pg.start(chosen)
    finally:
        embedded_pg.stop(settings)
        if holder is not None:
            holder.close()


def test_a_free_port_taken_before_the_server_binds_it_moves_on_to_the_next(tmp_path, caplog):
    """Two servers starting at once can find the same port free: the one that loses the bind tries the next free
    port instead of failing (only where the port was chosen automatically)."""
    default = Settings.model_fields["embedded_port"].default
    holders = [] if embedded_pg._port_in_use(default) else [_listen_on(default)]
    for _ in range(20):
        port = embedded_pg._free_port_after(default)
        racer = socket.socket()          # bound, not listening, no SO_REUSEADDR: looks free, a server cannot bind it
        try:
            racer.bind(("127.0.0.1", port))
            break
        except OSError:                           # in TIME_WAIT: a server could bind it, so take it out of the race
            racer.close()
            holders.append(_listen_on(port))
    holders.append(racer)
    settings = Settings(state_dir=tmp_path / "state", database_url=None)
    try:
        with caplog.at_level("WARNING", logger="replenish.embedded_pg"):
            st = embedded_pg.start(settings)
        assert st.running and st.port not in (default, racer.getsockname()[1])
        assert f"port 127.0.0.1:{racer.getsockname()[1]} was taken before the embedded PostgreSQL" in caplog.text
        psycopg2.connect(st.url(settings.embedded_database)).close()
    finally:
        embedded_pg.stop(settings)
        for h in holders:
            h.close()


def test_db_status_of_a_stopped_server_says_where_it_will_start(tmp_path, monkeypatch):
    """It gave the default port and a URL for a server that was not running, while another server held that port."""
    import json

    from typer.testing import CliRunner

    from replenish.cli import app
    from replenish.settings import get_settings

    default = Settings.model_fields["embedded_port"].default
    holder = None if embedded_pg._port_in_use(default) else _listen_on(default)
    monkeypatch.setenv("REPLENISH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("REPLENISH_DATABASE_URL", raising=False)
    monkeypatch.delenv("REPLENISH_EMBEDDED_PORT", raising=False)
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(app, ["db", "status", "--json"])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert doc["running"] is False and doc["port"] is None and doc["url"] is None
        assert doc["next_start"] == f"on the first free port above {default}, which another server holds"
        monkeypatch.setenv("REPLENISH_EMBEDDED_PORT", str(default))
        get_settings.cache_clear()
        assert "refused: port" in json.loads(CliRunner().invoke(app, ["db", "status", "--json"]).stdout)["next_start"]
        free = _free_port()
        monkeypatch.setenv("REPLENISH_EMBEDDED_PORT", str(free))
        get_settings.cache_clear()
        assert CliRunner().invoke(app, ["db", "status"]).stdout.splitlines()[-1].split() == ["next", "start", "on",
                                                                                              "port", str(free)]
    finally:
        get_settings.cache_clear()
        if holder is not None:
            holder.close()

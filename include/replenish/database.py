"""Connections to the warehouse: one URL, derived from the settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, TypedDict
from urllib.parse import urlsplit

from replenish.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


def database_url(settings: Settings | None = None, *, start: bool = True) -> str:
    """The warehouse URL: REPLENISH_DATABASE_URL, or the embedded server (started on demand)."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    from replenish import embedded_pg

    server = embedded_pg.start(settings) if start else embedded_pg.status(settings)
    return server.url(settings.embedded_database)


def sqlalchemy_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg2://{rest}"
    return url


@lru_cache(maxsize=4)
def engine_for(url: str) -> Engine:
    """The process's one engine (connection pool) for a database URL."""
    from sqlalchemy import create_engine

    return create_engine(sqlalchemy_url(url), pool_pre_ping=True, future=True)


def engine(settings: Settings | None = None) -> Engine:
    return engine_for(database_url(settings))


@contextmanager
def begin(settings: Settings | None = None) -> Iterator[Connection]:
    """A transaction: committed on success, rolled back on any error."""
    with engine(settings).begin() as conn:
        yield conn


@contextmanager
def held_alone(engine: Engine, scope: str, key: str) -> Iterator[bool]:
    """True while this process alone holds (scope, key); False when another live process holds it.

    A transaction-level advisory lock on a connection of its own, kept for the block: it dies with the process
    (PostgreSQL ends a killed client's session), so a crashed holder never blocks the key, and two live
    holders never run the block at once. The caller's own transactions are separate from it."""
    from sqlalchemy import text

    with engine.connect() as lk, lk.begin():
        got = lk.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:s), hashtext(:k))"),
                         {"s": scope, "k": key}).scalar()
        yield bool(got)


def is_missing_relation(exc: BaseException) -> bool:
    """Whether a database error (psycopg2's, or SQLAlchemy's wrapping one) says a table or view does not exist
    (SQLSTATE 42P01): a relation not migrated or built yet, which some readers take as "no rows yet"."""
    return getattr(getattr(exc, "orig", None) or exc, "pgcode", None) == "42P01"


class UrlParts(TypedDict):
    host: str
    port: int
    user: str
    password: str
    dbname: str


def url_parts(url: str) -> UrlParts:
    """Host, port, user, password and database of a postgres URL (for dbt profiles)."""
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": parts.username or "postgres",
        "password": parts.password or "",
        "dbname": (parts.path or "/postgres").lstrip("/") or "postgres",
    }

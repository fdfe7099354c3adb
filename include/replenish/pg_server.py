"""Server-level operations on a PostgreSQL server (not on a database): creating and dropping databases.

Its own module so that ``database`` (engines) and ``embedded_pg`` (the embedded server) both use it without
importing each other.
"""

from __future__ import annotations


def ensure_database(admin_url: str, name: str) -> None:
    """CREATE DATABASE ``name`` on the server of ``admin_url`` unless it exists (needs autocommit)."""
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def _admin_execute(admin_url: str, statement: str) -> None:
    """Run one statement on the server of ``admin_url`` outside a transaction (CREATE/DROP DATABASE)."""
    import psycopg2

    conn = psycopg2.connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def drop_database(admin_url: str, name: str) -> None:
    """DROP DATABASE ``name`` if it exists, ending its sessions."""
    _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def recreate_database(admin_url: str, name: str) -> None:
    """Drop (if present) and create database ``name``: an empty database."""
    drop_database(admin_url, name)
    _admin_execute(admin_url, f'CREATE DATABASE "{name}"')

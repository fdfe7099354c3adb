"""Server-level operations on a PostgreSQL server (not on a database): creating a database.

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

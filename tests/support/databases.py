"""Scratch databases for the tests that need one of their own, on the test server (embedded or external)."""

from __future__ import annotations


def scratch_database(name: str) -> str:
    """Drop database ``name`` (ending its sessions) and create it empty; its URL."""
    from replenish.database import database_url
    from replenish.pg_server import recreate_database

    server = database_url().rsplit("/", 1)[0]
    recreate_database(f"{server}/postgres", name)
    return f"{server}/{name}"

"""Per-terminal POS API keys: one store each, hashed at rest, revocable.

A key looks like ``rk_<8 hex prefix>_<43 urlsafe chars>``; the prefix is stored in clear so an operator can
tell keys apart in listings, the whole key only as SHA-256 (see tables.py for why not argon2).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

from replenish import migrations

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class ApiKey:
    key_id: int
    name: str
    store_id: int
    key_prefix: str
    revoked: bool


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(conn: Connection, name: str, store_id: int, *, created_by: str | None = None) -> tuple[ApiKey, str]:
    """A new key for one terminal of ``store_id``; the clear key is returned once and never stored."""
    if not name.strip():
        raise ValueError("name must not be empty")
    migrations.ensure_current(conn)
    prefix = secrets.token_hex(4)
    key = f"rk_{prefix}_{secrets.token_urlsafe(32)}"
    exists = conn.execute(
        text("SELECT 1 FROM platform.api_keys WHERE name = :n AND revoked_at IS NULL"), {"n": name}
    ).first()
    if exists:
        raise ValueError(f"an active API key named {name!r} exists (revoke it or choose another name)")
    key_id: int = conn.execute(
        text(
            "INSERT INTO platform.api_keys (name, store_id, key_prefix, key_hash, created_by) "
            "VALUES (:n, :s, :p, :h, :c) RETURNING key_id"
        ),
        {"n": name, "s": int(store_id), "p": prefix, "h": _hash(key), "c": created_by},
    ).scalar_one()
    return ApiKey(int(key_id), name, int(store_id), prefix, False), key


def revoke_key(conn: Connection, name: str) -> bool:
    migrations.ensure_current(conn)
    res = conn.execute(
        text("UPDATE platform.api_keys SET revoked_at = now() WHERE name = :n AND revoked_at IS NULL"), {"n": name}
    )
    return bool(res.rowcount)


def list_keys(conn: Connection) -> list[dict]:
    migrations.ensure_current(conn)
    rows = conn.execute(
        text(
            "SELECT name, store_id, key_prefix, created_by, created_at, revoked_at, last_used_at "
            "FROM platform.api_keys ORDER BY name"
        )
    ).mappings()
    return [dict(r) for r in rows]


def lookup(conn: Connection, key: str) -> ApiKey | None:
    """The active key matching ``key`` (None for unknown or revoked keys)."""
    if not key.startswith("rk_") or len(key) > 200:
        return None
    row = conn.execute(
        text(
            "SELECT key_id, name, store_id, key_prefix, last_used_at < now() - interval '1 minute' AS stale "
            "FROM platform.api_keys WHERE key_hash = :h AND revoked_at IS NULL"
        ),
        {"h": _hash(key)},
    ).first()
    if row is None:
        return None
    if row.stale is not False:
        # last use to the minute: a write on every request would serialise a till's calls on this row
        conn.execute(text("UPDATE platform.api_keys SET last_used_at = now() WHERE key_id = :k"), {"k": row.key_id})
    return ApiKey(int(row.key_id), row.name, row.store_id, row.key_prefix, False)

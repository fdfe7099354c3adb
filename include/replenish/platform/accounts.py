"""Platform users and what each may see: the one place that defines roles and scopes.

Buyers see the suppliers or item categories assigned to them, store managers their own stores;
admins see everything. The digest (one mail per buyer) and the web app both read these tables.
Passwords are hashed with argon2 (argon2-cffi); a generated password is returned once, never stored.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

from replenish import migrations
from replenish.ids import parse_id
from replenish.platform.errors import has_control_chars

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

ROLES = ("admin", "buyer", "store_manager")
SCOPE_TYPES = ("store", "supplier", "category")

@dataclass(frozen=True)
class User:
    user_id: int
    username: str
    email: str
    display_name: str
    role: str
    is_active: bool
    scopes: dict[str, tuple[str, ...]]

    def scope(self, scope_type: str) -> tuple[str, ...]:
        return self.scopes.get(scope_type, ())

    def ids(self, scope_type: str) -> tuple[int, ...]:
        """The store or supplier ids of a scope (stored as text beside category names, integers when set)."""
        return tuple(int(v) for v in self.scope(scope_type))

    def typed_scopes(self) -> dict[str, list[int] | list[str]]:
        """Every scope with its values typed: store and supplier ids as integers, categories as names."""
        out: dict[str, list[int] | list[str]] = {}
        for k, v in self.scopes.items():
            if k == "category":
                out[k] = list(v)
            else:
                out[k] = list(self.ids(k))
        return out


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def add_user(
    conn: Connection,
    username: str,
    email: str,
    role: str,
    *,
    password: str | None = None,
    display_name: str = "",
    scopes: Mapping[str, Sequence[int | str]] | None = None,
) -> tuple[User, str]:
    """Create a user (or fail if the username exists); returns the user and the clear password once."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    values_of = _checked_scopes(scopes or {})
    migrations.ensure_current(conn)
    password = password or generate_password()
    user_id: int = conn.execute(
        text(
            "INSERT INTO platform.users (username, email, display_name, role, password_hash) "
            "VALUES (:u, :e, :d, :r, :h) RETURNING user_id"
        ),
        {"u": username, "e": email, "d": display_name or username, "r": role, "h": hash_password(password)},
    ).scalar_one()
    for scope_type, values in values_of.items():
        for value in values:
            conn.execute(
                text("INSERT INTO platform.user_scopes VALUES (:i, :t, :v) ON CONFLICT DO NOTHING"),
                {"i": user_id, "t": scope_type, "v": value},
            )
    user = get_user(conn, username)
    assert user is not None
    return user, password


def set_password(conn: Connection, username: str, password: str) -> None:
    conn.execute(
        text("UPDATE platform.users SET password_hash = :h WHERE username = :u"),
        {"h": hash_password(password), "u": username},
    )


def _scopes(conn: Connection, user_ids: list[int]) -> dict[int, dict[str, tuple[str, ...]]]:
    out: dict[int, dict[str, list[str]]] = {uid: {} for uid in user_ids}
    if not user_ids:
        return {}
    rows = conn.execute(
        text(
            "SELECT user_id, scope_type, scope_value FROM platform.user_scopes "
            "WHERE user_id = ANY(:ids) ORDER BY scope_type, scope_value"
        ),
        {"ids": user_ids},
    ).all()
    for r in rows:
        out[r.user_id].setdefault(r.scope_type, []).append(r.scope_value)
    return {uid: {k: tuple(v) for k, v in s.items()} for uid, s in out.items()}


def _users(conn: Connection, where: str = "", params: dict | None = None) -> list[User]:
    migrations.ensure_current(conn)  # after the process's first call: no query
    rows = conn.execute(
        text(
            "SELECT user_id, username, email, display_name, role, is_active FROM platform.users "
            f"{where} ORDER BY username"
        ),
        params or {},
    ).all()
    scopes = _scopes(conn, [r.user_id for r in rows])
    return [
        User(r.user_id, r.username, r.email, r.display_name, r.role, r.is_active, scopes.get(r.user_id, {}))
        for r in rows
    ]


def get_user(conn: Connection, username: str) -> User | None:
    found = _users(conn, "WHERE username = :u", {"u": username})
    return found[0] if found else None


def list_users(conn: Connection, *, role: str | None = None, active_only: bool = False) -> list[User]:
    clauses, params = [], {}
    if role:
        clauses.append("role = :r")
        params["r"] = role
    if active_only:
        clauses.append("is_active")
    return _users(conn, ("WHERE " + " AND ".join(clauses)) if clauses else "", params)


def disable_user(conn: Connection, username: str) -> bool:
    res = conn.execute(text("UPDATE platform.users SET is_active = false WHERE username = :u"), {"u": username})
    return bool(res.rowcount)


_dummy_hash: str | None = None


def _dummy_password_hash() -> str:
    """An argon2 hash of a random password, made with the same parameters as real ones (once per process)."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(16))
    return _dummy_hash


def authenticate(conn: Connection, username: str, password: str) -> User | None:
    """The active user with this password, or None.

    Unknown user, disabled user, wrong password and unusable input (control characters) do the same work,
    one argon2 verification (against a dummy hash when there is no usable one), and give the same answer:
    neither the answer nor its time tells which names exist or are disabled."""
    migrations.ensure_current(conn)
    row = None
    if username and not has_control_chars(username) and not has_control_chars(password):
        row = conn.execute(
            text("SELECT password_hash, is_active FROM platform.users WHERE username = :u"), {"u": username}
        ).first()
    ok = verify_password(row.password_hash if row is not None else _dummy_password_hash(), password)
    if row is None or not row.is_active or not ok:
        return None
    if _hasher().check_needs_rehash(row.password_hash):  # parameters raised since: upgrade the stored hash
        set_password(conn, username, password)
    return get_user(conn, username)


def _checked_scopes(scopes: Mapping[str, Sequence[int | str]]) -> dict[str, list[str]]:
    """Scope values as stored: store and supplier ids must be integers (the warehouse's keys)."""
    out: dict[str, list[str]] = {}
    for scope_type, values in scopes.items():
        if scope_type not in SCOPE_TYPES:
            raise ValueError(f"scope type must be one of {', '.join(SCOPE_TYPES)}, not {scope_type!r}")
        if scope_type == "category":
            out[scope_type] = [str(v) for v in values]
            continue
        ids = [parse_id(v) for v in values]  # what the web app and the CLI accept as an id, nothing looser
        if None in ids:
            raise ValueError(f"{scope_type} ids are whole numbers, got {list(values)!r}")
        out[scope_type] = [str(i) for i in ids]
    return out


def set_scopes(conn: Connection, username: str, scopes: Mapping[str, Sequence[int | str]]) -> None:
    """Replace the user's scopes (store / supplier ids, category names)."""
    values_of = _checked_scopes(scopes)
    user = get_user(conn, username)
    if user is None:
        raise KeyError(username)
    conn.execute(text("DELETE FROM platform.user_scopes WHERE user_id = :i"), {"i": user.user_id})
    for scope_type, values in values_of.items():
        for value in values:
            conn.execute(
                text("INSERT INTO platform.user_scopes VALUES (:i, :t, :v) ON CONFLICT DO NOTHING"),
                {"i": user.user_id, "t": scope_type, "v": value},
            )


def enable_user(conn: Connection, username: str) -> bool:
    res = conn.execute(text("UPDATE platform.users SET is_active = true WHERE username = :u"), {"u": username})
    return bool(res.rowcount)

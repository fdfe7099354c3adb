"""Server-side web sessions and their CSRF tokens (table platform.sessions).

The cookie holds a random 256-bit token; the database keeps its SHA-256, the user and a per-session CSRF
token that every state-changing form (field ``csrf_token``) or htmx request (header ``X-CSRF-Token``)
must echo. A session ends after ``session_hours`` in any case, and after ``session_idle_minutes`` unused.
Sign-out deletes the row, so a copied cookie is dead afterwards; a disabled user's sessions
stop working at once (the lookup requires an active user).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from sqlalchemy import text

from replenish.platform.accounts import User, get_user

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

SESSION_COOKIE = "rp_session"
LOGIN_CSRF_COOKIE = "rp_login_csrf"  # double-submit token for the sign-in form (no session exists yet)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def create_session(conn: Connection, user: User, hours: int) -> tuple[str, str]:
    """(cookie token, csrf token) of a new session; expired sessions are purged on the way."""
    conn.execute(text("DELETE FROM platform.sessions WHERE expires_at < now()"))
    token, csrf = new_token(), new_token()
    conn.execute(
        text(
            "INSERT INTO platform.sessions (token_hash, user_id, csrf_token, expires_at) "
            "VALUES (:h, :u, :c, now() + make_interval(hours => :n))"
        ),
        {"h": _hash(token), "u": user.user_id, "c": csrf, "n": hours},
    )
    return token, csrf


def session_user(conn: Connection, token: str | None, *, idle_minutes: int | None = None) -> tuple[User, str] | None:
    """(active user, csrf token) of a live session, or None. With ``idle_minutes`` a session unused for that
    long is dead too (and deleted); its last use is written at most once a minute, not on every request."""
    if not token or len(token) > 200:
        return None
    row = conn.execute(
        text(
            """SELECT u.username, s.csrf_token, s.last_seen_at < now() - interval '1 minute' AS stale,
                   s.last_seen_at < now() - make_interval(mins => :idle) AS idle
            FROM platform.sessions s JOIN platform.users u USING (user_id)
            WHERE s.token_hash = :h AND s.expires_at > now() AND u.is_active"""
        ),
        {"h": _hash(token), "idle": idle_minutes or 0},
    ).first()
    if row is None:
        return None
    if idle_minutes and row.idle:
        end_session(conn, token)
        return None
    if row.stale:
        conn.execute(text("UPDATE platform.sessions SET last_seen_at = now() WHERE token_hash = :h"),
                     {"h": _hash(token)})
    user = get_user(conn, row.username)
    return (user, row.csrf_token) if user else None


def end_session(conn: Connection, token: str | None) -> None:
    if token:
        conn.execute(text("DELETE FROM platform.sessions WHERE token_hash = :h"), {"h": _hash(token)})


def end_user_sessions(conn: Connection, username: str) -> int:
    res = conn.execute(
        text(
            "DELETE FROM platform.sessions WHERE user_id = (SELECT user_id FROM platform.users WHERE username = :u)"
        ),
        {"u": username},
    )
    return int(res.rowcount or 0)


def same_token(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))

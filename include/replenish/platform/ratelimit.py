"""Rate limits: in-process token buckets (sign-in attempts per client IP and per IP+username, API calls per
key) and a per-account sign-in backoff kept in the database.

The buckets live in one process: with several workers or hosts each keeps its own, so their limit is
multiplied by the number of processes. The per-account backoff is in ``platform.login_failures``, so it
holds across processes and restarts, and a guesser spreading attempts over many addresses still meets it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

BACKOFF_FIRST_SECONDS = 30  # the first wait; each further failure doubles it (up to the configured maximum)


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; one bucket per key, created on first use."""

    def __init__(
        self, rate: float, capacity: float, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate, self.capacity, self.clock, self.max_keys = rate, capacity, clock, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> float:
        """0.0 when allowed (and the token spent), else the seconds until a token is available."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self.max_keys:  # bound memory: forget the full (idle) buckets
                self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.capacity}
            return (cost - tokens) / self.rate

    def reset(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)


# ------------------------------------------------------------------------------------ per-account backoff
def account_key(username: str) -> str:
    """The account as typed, folded: 'Admin ' and 'admin' share one backoff (control characters dropped:
    PostgreSQL text cannot hold NUL)."""
    return "".join(ch for ch in username.strip().lower()[:200] if ord(ch) >= 32 and ord(ch) != 127)


def account_wait(conn: Connection, account: str) -> float:
    """Seconds until ``account`` may try to sign in again (0.0: now).

    Locks the account's row until the transaction ends: parallel attempts on one account are checked and
    counted one after the other, so a burst cannot slip past the backoff. Unknown names get a row too (same
    behaviour as real accounts: the backoff does not tell which names exist)."""
    conn.execute(
        text("INSERT INTO platform.login_failures (account) VALUES (:a) ON CONFLICT DO NOTHING"), {"a": account}
    )
    wait = conn.execute(
        text(
            "SELECT greatest(0, extract(epoch FROM locked_until - now())) FROM platform.login_failures "
            "WHERE account = :a FOR UPDATE"
        ),
        {"a": account},
    ).scalar()
    return float(wait or 0.0)


def record_failure(conn: Connection, account: str, *, free_failures: int, max_seconds: int) -> float:
    """Count a failed sign-in; from the ``free_failures``-th consecutive failure on, the account waits
    30 s, 60 s, 120 s ... (at most ``max_seconds``). Failures older than a day are forgotten. Returns the wait."""
    wait = conn.execute(
        text(
            """UPDATE platform.login_failures f SET failures = n.failures, last_failure_at = now(),
                locked_until = CASE WHEN n.failures >= :free THEN now() + make_interval(
                    secs => least(:max, :first * power(2, least(n.failures - :free, 30)))) END
            FROM (SELECT account, CASE WHEN last_failure_at IS NULL OR last_failure_at < now() - interval '1 day'
                                       THEN 1 ELSE failures + 1 END AS failures
                  FROM platform.login_failures WHERE account = :a) n
            WHERE f.account = n.account
            RETURNING greatest(0, extract(epoch FROM f.locked_until - now()))"""
        ),
        {"a": account, "free": max(free_failures, 1), "max": max_seconds, "first": BACKOFF_FIRST_SECONDS},
    ).scalar()
    # forget names nobody tried for a day (sprayed unknown names must not pile up)
    conn.execute(
        text(
            "DELETE FROM platform.login_failures WHERE last_failure_at < now() - interval '1 day' "
            "AND (locked_until IS NULL OR locked_until < now())"
        )
    )
    return float(wait or 0.0)


def clear_failures(conn: Connection, account: str) -> None:
    conn.execute(text("DELETE FROM platform.login_failures WHERE account = :a"), {"a": account})

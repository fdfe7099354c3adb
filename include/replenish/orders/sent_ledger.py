"""Exactly-once transmission, shared by the order dispatcher and the digest mails: the send ledger.

``orders.send_attempts`` (table: ``replenish.migrations``) holds one row per transmission attempt of a
message, keyed by (channel, idempotency key, attempt number). A queue (``orders.outbox``,
``orders.digest_outbox``) says *what* is due; the ledger says what was tried and what came of it.

:func:`transmit` sends one message in four steps (the intent, the outcome and the queue's settlement are
three separate transactions):

1. **Exclusive**: a transaction-level advisory lock on (channel, key), held on its own connection for the
   whole attempt. It dies with the process (PostgreSQL ends the session of a killed client), so a killed
   dispatcher never blocks a message, and two live dispatchers never send the same message at once.
2. **Intent** (claim transaction): the queue row is re-read; the ledger is read. An accepted attempt, or the
   receiver's own marker (a file present), settles the message as sent *without sending*. Otherwise the
   queue may refuse (delivery date passed, attempts exhausted). Otherwise a new attempt row (no outcome yet)
   and the queue row's attempt count are committed **before the call**. If earlier attempts ended without a
   known outcome (the process died during or after the call, or the receiver's answer was lost), this
   transmission is a *possible duplicate*: the channel says so to the receiver, and ONE alert for those
   earlier attempts is written in this same transaction while they are marked alerted, so the alert can be
   neither lost with a rolled-back transaction nor repeated by a later run.
3. **Call**: the provider call. A :class:`ChannelError` says whether the message may have been delivered
   anyway (a timeout after the request was sent): then the outcome is 'unknown', handled like a crash.
4. **Outcome**: the attempt's outcome (the 'sent' marker, with the provider's reference) commits alone, in
   a tiny transaction that waits for no lock; then the queue row is settled in its own transaction.

A kill between the provider's acceptance and the outcome commit is the one window no local bookkeeping can
close: the next run resends, marked as a possible duplicate of the same order, with one alert. Everything
before the intent commit is invisible (resent normally); everything after the outcome commit is deduplicated.

Tests simulate kills with :class:`SimulatedCrash` raised from ``hooks`` at each step (see ``STEPS``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import text

from replenish.orders.channels.base import ChannelError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

# Where a test may kill the sender (hooks[step](key)): the kill-point corpus of tests/test_dispatch_faults.py.
STEPS = (
    "before_claim",   # the message is due; nothing locked
    "after_claim",    # the claim transaction holds the row; no intent yet (rolled back by a kill)
    "before_call",    # the intent is committed; the provider has not been called
    "after_call",     # the provider accepted; its acceptance is not recorded yet (the ambiguous window)
    "after_outcome",  # the 'sent' marker is committed; the queue row still says due
    "before_commit",  # the queue row is updated, not committed
    "after_commit",   # everything committed
)
# "after_send" is the older name of "after_outcome" (kept for callers' hooks).
_ALIASES = {"after_outcome": "after_send"}

UNCERTAIN = (None, "interrupted", "unknown")  # outcomes after which the receiver may have the message


class SimulatedCrash(BaseException):
    """Raised by test hooks to emulate a process kill (BaseException: never caught as a send failure)."""


@dataclass(frozen=True)
class Attempt:
    attempt: int
    started_at: dt.datetime
    outcome: str | None           # None: no outcome recorded yet (in flight, or the process died)
    external_ref: str | None
    possible_duplicate: bool
    alerted: bool
    error: str | None

    @property
    def uncertain(self) -> bool:
        return self.outcome in UNCERTAIN

    def describe(self) -> str:
        why = f"the answer was lost: {self.error}" if self.outcome == "unknown" else \
            "the sender stopped before recording an outcome"
        return f"attempt {self.attempt} at {self.started_at:%Y-%m-%d %H:%M:%S} ({why})"


@dataclass(frozen=True)
class History:
    attempts: tuple[Attempt, ...]

    @property
    def accepted(self) -> Attempt | None:
        return next((a for a in self.attempts if a.outcome == "accepted"), None)

    @property
    def uncertain(self) -> list[Attempt]:
        return [a for a in self.attempts if a.uncertain]

    @property
    def next_attempt(self) -> int:
        return max((a.attempt for a in self.attempts), default=0) + 1


@dataclass(frozen=True)
class Message:
    channel: str               # ledger channel: 'email', 'api', 'edifact', 'digest', ...
    key: str                   # idempotency key (the order id; digest-<date>-u<user>)
    order_id: str | None       # alerts are filed under it (None for mails that are not orders)
    what: str                  # for people: "order PO2030...", "digest digest-... to anna@..."
    receiver: str = "receiver"  # "supplier", "buyer"


@dataclass(frozen=True)
class Result:
    """What one transmission came to: 'sent', 'deduplicated' (sent before), 'failed' (not delivered),
    'unknown' (may have been delivered: handled like a crash), or 'refused' by the queue (no attempt)."""

    kind: str
    ref: str | None = None
    error: str | None = None
    attempt: int | None = None
    possible_duplicate: bool = False
    count: str = ""            # what the queue made of it: 'sent', 'failed', 'dead', 'expired', ...


class Queue(Protocol):
    """The queue-specific half of a transmission (rows of orders.outbox or orders.digest_outbox)."""

    def claim(self, conn: Connection) -> dict[str, Any] | None:
        """Re-read and lock the queue row in the claim transaction; None when it is no longer due."""

    def found(self, row: dict[str, Any]) -> str | None:
        """The receiver's own marker (a file present) -> its reference, else None."""

    def refuse(self, conn: Connection, row: dict[str, Any], hist: History, msg: Message) -> str | None:
        """Settle the row without sending (expired, attempts exhausted): a count name, else None."""

    def intend(self, conn: Connection, row: dict[str, Any], attempt: int) -> None:
        """Record the intent on the queue row (its attempt count), in the intent transaction."""

    def send(self, row: dict[str, Any], possible_duplicate: bool) -> str:
        """The provider call; returns the provider's reference."""

    def settle(self, conn: Connection, row: dict[str, Any], result: Result, hist: History, msg: Message) -> str:
        """Record the result on the queue row; returns the count name ('sent', 'failed', 'dead', ...).
        ``hist`` includes this attempt's outcome (an uncertain one is worth naming in a dead-letter alert)."""


def _hook(hooks: dict | None, step: str, key: str | None) -> None:
    if not hooks:
        return
    for name in (step, _ALIASES.get(step)):
        if name and name in hooks:
            hooks[name](key)


@contextmanager
def exclusive(engine: Engine, msg: Message) -> Iterator[bool]:
    """True while this process alone may transmit ``msg`` (False: another live sender has it)."""
    from replenish.database import held_alone

    with held_alone(engine, "orders.send_attempts", f"{msg.channel}:{msg.key}") as mine:
        yield mine


def history(conn: Connection, msg: Message) -> History:
    rows = conn.execute(
        text("""SELECT attempt, started_at, outcome, external_ref, possible_duplicate,
                       alerted_at IS NOT NULL AS alerted, error
                FROM orders.send_attempts WHERE channel = :c AND idempotency_key = :k ORDER BY attempt"""),
        {"c": msg.channel, "k": msg.key},
    ).mappings().all()
    return History(tuple(Attempt(**dict(r)) for r in rows))


def alert(conn: Connection, msg: Message, kind: str, message: str) -> None:
    """One alert in ``orders.alerts``, in the caller's transaction (it commits or vanishes with the state
    change it reports)."""
    conn.execute(
        text("INSERT INTO orders.alerts (order_id, kind, message) VALUES (:o, :k, :m)"),
        {"o": msg.order_id, "k": kind, "m": message[:2000]},
    )


def uncertain_note(hist: History, receiver: str) -> str:
    """'; attempt 2 at ... may have reached the supplier' (empty when every attempt has a known outcome)."""
    unc = hist.uncertain
    if not unc:
        return ""
    return "; " + ", ".join(a.describe() for a in unc) + f" may have reached the {receiver}"


def _begin(conn: Connection, msg: Message, hist: History) -> int:
    """The intent: a new attempt row (possible duplicate after uncertain ones) and their one alert."""
    n = hist.next_attempt
    unalerted = [a for a in hist.uncertain if not a.alerted]
    dup = bool(hist.uncertain)
    if unalerted:
        # The possible duplicate is announced once per uncertain attempt: the alert and the marks commit
        # together with the intent, so a kill loses neither and a later run repeats neither.
        earlier = ", ".join(a.describe() for a in unalerted)
        alert(conn, msg, f"{msg.channel}_possible_duplicate",
              f"{msg.what}: {earlier} may have reached the {msg.receiver}; sending attempt {n} marked as a "
              f"possible duplicate of {msg.key}. Check with the {msg.receiver} that it is handled once.")
        conn.execute(
            text("""UPDATE orders.send_attempts SET alerted_at = clock_timestamp()
                    WHERE channel = :c AND idempotency_key = :k AND attempt = ANY(:a)"""),
            {"c": msg.channel, "k": msg.key, "a": [a.attempt for a in unalerted]},
        )
    conn.execute(
        text("""UPDATE orders.send_attempts SET outcome = 'interrupted', finished_at = clock_timestamp()
                WHERE channel = :c AND idempotency_key = :k AND outcome IS NULL"""),
        {"c": msg.channel, "k": msg.key},
    )
    conn.execute(
        text("""INSERT INTO orders.send_attempts (channel, idempotency_key, attempt, order_id, possible_duplicate)
                VALUES (:c, :k, :n, :o, :d)"""),
        {"c": msg.channel, "k": msg.key, "n": n, "o": msg.order_id, "d": dup},
    )
    return n


def _finish(engine: Engine, msg: Message, n: int, outcome: str, ref: str | None, error: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("""UPDATE orders.send_attempts SET outcome = :out, external_ref = :r, error = :e,
                        finished_at = clock_timestamp()
                    WHERE channel = :c AND idempotency_key = :k AND attempt = :n"""),
            {"out": outcome, "r": ref, "e": error, "c": msg.channel, "k": msg.key, "n": n},
        )


def _found(conn: Connection, msg: Message, hist: History, ref: str) -> None:
    """The receiver holds the message (its file is there): the latest attempt without an outcome delivered it."""
    last = next((a for a in reversed(hist.attempts) if a.outcome in (None, "interrupted")), None)
    if last is not None:
        conn.execute(
            text("""UPDATE orders.send_attempts SET outcome = 'accepted', external_ref = :r,
                        finished_at = clock_timestamp()
                    WHERE channel = :c AND idempotency_key = :k AND attempt = :n"""),
            {"r": ref, "c": msg.channel, "k": msg.key, "n": last.attempt},
        )


def _error(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"[:1000]


def transmit(engine: Engine, queue: Queue, msg: Message, *, hooks: dict | None = None) -> Result:
    """Send one message at most once per attempt, never silently twice (see the module docstring).
    Returns the result; ``Result.kind`` is 'busy' (another sender has it) or 'gone' (no longer due) when
    nothing was done; ``Result.count`` is what the queue made of it."""
    with exclusive(engine, msg) as mine:
        if not mine:
            return Result("busy", count="busy")
        with engine.begin() as conn:
            row = queue.claim(conn)
            if row is None:
                return Result("gone", count="gone")
            _hook(hooks, "after_claim", msg.key)
            hist = history(conn, msg)
            acc = hist.accepted
            ref = acc.external_ref if acc else queue.found(row)
            if acc is not None or ref is not None:
                if acc is None and ref is not None:
                    _found(conn, msg, hist, ref)
                res = Result("deduplicated", ref=ref)
                return replace(res, count=queue.settle(conn, row, res, hist, msg))
            refused = queue.refuse(conn, row, hist, msg)
            if refused is not None:
                return Result("refused", count=refused)
            n = _begin(conn, msg, hist)
            dup = bool(hist.uncertain)
            queue.intend(conn, row, n)
        _hook(hooks, "before_call", msg.key)
        try:
            ref = queue.send(row, dup)
            res = Result("sent", ref=ref, attempt=n, possible_duplicate=dup)
        except ChannelError as exc:
            res = Result("unknown" if exc.maybe_delivered else "failed", error=_error(exc), attempt=n,
                         possible_duplicate=dup)
        except Exception as exc:  # noqa: BLE001 - an unexpected error mid-call may follow delivery: unknown
            # recorded in the ledger as an unknown outcome (handled like a crash); its traceback goes to the log
            log.exception("%s: unexpected error while sending, outcome unknown", msg.key)
            res = Result("unknown", error=_error(exc), attempt=n, possible_duplicate=dup)
        _hook(hooks, "after_call", msg.key)
        outcome = {"sent": "accepted", "failed": "rejected", "unknown": "unknown"}[res.kind]
        _finish(engine, msg, n, outcome, res.ref, res.error)
        _hook(hooks, "after_outcome", msg.key)
        with engine.begin() as conn:
            count = queue.settle(conn, row, res, history(conn, msg), msg)
            _hook(hooks, "before_commit", msg.key)
        _hook(hooks, "after_commit", msg.key)
        return replace(res, count=count)


def run_hook(hooks: dict | None, step: str, key: str | None) -> None:
    """Call the test hook of ``step`` (the queues' drain loops use it for 'before_claim')."""
    _hook(hooks, step, key)


__all__ = [
    "STEPS", "Attempt", "History", "Message", "Queue", "Result", "SimulatedCrash", "alert", "exclusive",
    "history", "run_hook", "transmit", "uncertain_note",
]

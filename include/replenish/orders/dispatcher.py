"""Drain orders.outbox: every due message through ``replenish.orders.sent_ledger.transmit``.

Exactly-once at the supplier despite crashes (the protocol is in ``sent_ledger``): the intent to send is
committed before the call, the outcome right after it; an order is resent after a crash only when the ledger
cannot tell whether the supplier has it, and then the resend says so to the supplier ("possible duplicate of
order X": mail subject and header, API header next to the same ``Idempotency-Key``, EDIFACT BGM message
function 7) and exactly one alert ``<channel>_possible_duplicate`` is raised, in the transaction that commits
the resend's intent. A file channel whose file is still there, or a ledger 'sent' marker, settles the order
as sent without sending.

Orders whose delivery date is before ``business_today`` (``replenish.clock.today()``) are never sent: they are
cancelled with reason ``delivery_date_passed`` and one alert (not dead-lettered: there is nothing a retry
could fix). Dead letters are for channels that failed ``max_attempts`` times, or for a message whose sender
died ``max_attempts`` times in a row (it is not sent again until a person retries it).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from replenish import clock
from replenish.orders.channels.base import ChannelError, kept_on_disk
from replenish.orders.order_tables import add_event, set_status
from replenish.orders.outbox import DELIVERY_PASSED as PASSED
from replenish.orders.outbox import expire
from replenish.orders.sent_ledger import (
    History,
    Message,
    Result,
    SimulatedCrash,
    alert,
    run_hook,
    transmit,
    uncertain_note,
)

__all__ = ["DispatchConfig", "OutboxRow", "SimulatedCrash", "backoff_seconds", "drain"]

@dataclass
class DispatchConfig:
    max_attempts: int = 5
    base_delay_s: float = 30.0
    max_delay_s: float = 3600.0
    jitter: float = 0.25


def backoff_seconds(attempts: int, cfg: DispatchConfig, rng: random.Random | None = None) -> float:
    base = min(cfg.base_delay_s * (2 ** max(attempts - 1, 0)), cfg.max_delay_s)
    return base * (1 + (rng or random).uniform(0, cfg.jitter))


class OutboxRow:
    """The attempt bookkeeping of a ``sent_ledger.Queue`` on an outbox table (orders.outbox and
    orders.digest_outbox have the same columns): the intent counts the attempt; a failure retries after a backoff
    until ``cfg.max_attempts``, then dead-letters through the table's own ``_dead``."""

    TABLE: ClassVar[str]
    cfg: DispatchConfig

    def _dead(self, conn: Connection, row: dict[str, Any], attempts: int, err: str, hist: History,
              msg: Message) -> None:
        raise NotImplementedError

    def _dead_letter(self, conn: Connection, row: dict[str, Any], err: str) -> None:
        conn.execute(
            text(f"UPDATE {self.TABLE} SET status = 'dead_letter', last_error = :e WHERE message_id = :m"),
            {"e": err, "m": row["message_id"]},
        )

    def _stalled(self, conn: Connection, row: dict[str, Any], hist: History, msg: Message) -> str | None:
        """'dead' (dead-lettered) when the sender died ``max_attempts`` times: only intents without outcomes get
        here (a failure at the last attempt dead-letters at once), and sending again would risk yet another
        possible duplicate."""
        if row["attempts"] < self.cfg.max_attempts:
            return None
        err = f"the sender stopped {row['attempts']} times without recording an outcome"
        self._dead(conn, row, row["attempts"], err, hist, msg)
        return "dead"

    def intend(self, conn: Connection, row: dict[str, Any], attempt: int) -> None:
        conn.execute(text(f"UPDATE {self.TABLE} SET attempts = attempts + 1 WHERE message_id = :m"),
                     {"m": row["message_id"]})

    def _retry_or_dead(self, conn: Connection, row: dict[str, Any], result: Result, hist: History, msg: Message,
                       now: dt.datetime | None = None) -> str:
        """A failed attempt: 'dead' at the last attempt, else 'failed' and due again after the backoff."""
        attempts = row["attempts"] + 1  # the intent counted this attempt
        err = result.error or "unknown error"
        if attempts >= self.cfg.max_attempts:
            self._dead(conn, row, attempts, err, hist, msg)
            return "dead"
        conn.execute(
            text(f"""UPDATE {self.TABLE} SET status = 'retry', last_error = :e,
                    next_attempt_at = COALESCE(:now, now()) + make_interval(secs => :d) WHERE message_id = :m"""),
            {"e": err, "m": row["message_id"], "d": backoff_seconds(attempts, self.cfg), "now": now},
        )
        return "failed"


class _OrderQueue(OutboxRow):
    """One orders.outbox message as a ``sent_ledger.Queue``."""

    TABLE = "orders.outbox"

    def __init__(self, cand: dict[str, Any], channels: dict, *, business_today: dt.date, cfg: DispatchConfig,
                 actor: str, run_id: str | None, now: dt.datetime | None):
        self.cand, self.channels, self.business_today, self.cfg = cand, channels, business_today, cfg
        self.actor, self.run_id, self.now = actor, run_id, now
        self.channel = channels.get(cand["channel"])

    def claim(self, conn: Connection) -> dict[str, Any] | None:
        row = conn.execute(
            text("""SELECT o.message_id, o.order_id, o.idempotency_key, o.channel, o.payload, o.attempts,
                           p.delivery_date
                    FROM orders.outbox o JOIN orders.purchase_orders p ON p.order_id = o.order_id
                    WHERE o.message_id = :m AND o.status IN ('pending', 'retry')
                      AND o.next_attempt_at <= COALESCE(:now, now())
                    FOR UPDATE OF o"""),
            {"m": self.cand["message_id"], "now": self.now},
        ).mappings().first()
        return dict(row) if row else None

    def found(self, row: dict[str, Any]) -> str | None:
        return self.channel.already_sent(row["idempotency_key"]) if self.channel is not None else None

    def refuse(self, conn: Connection, row: dict[str, Any], hist: History, msg: Message) -> str | None:
        oid = row["order_id"]
        if row["delivery_date"] < self.business_today:
            why = (f"not sent: delivery {row['delivery_date']} passed before it could be sent "
                   f"(business day {self.business_today})")
            expire(conn, oid, actor=self.actor, reason=PASSED, message_id=row["message_id"], detail=why)
            alert(conn, msg, PASSED, f"order {oid} cancelled, {why}{uncertain_note(hist, 'supplier')}")
            return "expired"
        return self._stalled(conn, row, hist, msg)

    def send(self, row: dict[str, Any], possible_duplicate: bool) -> str:
        if self.channel is None:
            raise ChannelError(f"no channel {row['channel']!r} configured")
        return self.channel.send(row["payload"], row["idempotency_key"], possible_duplicate=possible_duplicate)

    def settle(self, conn: Connection, row: dict[str, Any], result: Result, hist: History, msg: Message) -> str:
        mid, oid = row["message_id"], row["order_id"]
        if result.kind in ("sent", "deduplicated"):
            conn.execute(
                text("""UPDATE orders.outbox SET status = 'sent', sent_at = :now, last_error = NULL,
                        sent_by_run = :r WHERE message_id = :m"""),
                {"r": self.run_id, "m": mid, "now": clock.now(conn)},
            )
            set_status(conn, oid, "sent", self.actor)
            add_event(conn, oid, self.actor, "sent_ref", None, result.ref)
            if result.possible_duplicate:
                note = uncertain_note(hist, "supplier")
                add_event(conn, oid, self.actor, "possible_duplicate", None,
                          f"attempt {result.attempt} was marked as a possible duplicate{note}")
            return "sent"
        outcome = self._retry_or_dead(conn, row, result, hist, msg, self.now)
        if outcome == "failed":
            set_status(conn, oid, "failed", self.actor)
            set_status(conn, oid, "retry", self.actor)
        return outcome

    def _dead(self, conn: Connection, row: dict[str, Any], attempts: int, err: str, hist: History,
              msg: Message) -> None:
        self._dead_letter(conn, row, err)
        set_status(conn, row["order_id"], "failed", self.actor)
        set_status(conn, row["order_id"], "dead_letter", self.actor)
        alert(conn, msg, "dead_letter",
              f"gave up after {attempts} attempts: {err}{uncertain_note(hist, 'supplier')}")


def drain(
    engine: Engine,
    channels: dict,
    *,
    business_today: dt.date,
    run_id: str | None = None,
    limit: int | None = None,
    cfg: DispatchConfig | None = None,
    hooks: dict | None = None,
    now: dt.datetime | None = None,
    order_ids: list[str] | None = None,
) -> dict:
    """Send due outbox messages (all, or only those of ``order_ids``: "send now" sends its own order only).

    Counts: sent (deduplicated included), deduplicated, failed (will retry), dead, expired, possible_duplicates
    (sent marked as a possible duplicate), busy (another dispatcher was sending it), kept_on_disk (sent e-mails only
    written to the outbox folder: no SendGrid key, so no supplier has them)."""
    cfg = cfg or DispatchConfig()
    actor = f"dispatcher:{run_id or 'adhoc'}"
    counts = {"sent": 0, "failed": 0, "dead": 0, "deduplicated": 0, "expired": 0, "possible_duplicates": 0,
              "busy": 0, "kept_on_disk": 0}
    seen: set[int] = set()
    while limit is None or len(seen) < limit:
        with engine.connect() as conn:
            cand = conn.execute(
                text("""
                SELECT message_id, order_id, idempotency_key, channel FROM orders.outbox
                WHERE status IN ('pending', 'retry') AND next_attempt_at <= COALESCE(:now, now())
                  AND NOT (message_id = ANY(:seen))
                  AND (CAST(:ids AS text[]) IS NULL OR order_id = ANY(CAST(:ids AS text[])))
                ORDER BY next_attempt_at, message_id LIMIT 1"""),
                {"now": now, "seen": list(seen) or [0], "ids": order_ids},
            ).mappings().first()
        if cand is None:
            break
        seen.add(cand["message_id"])
        run_hook(hooks, "before_claim", cand["idempotency_key"])
        queue = _OrderQueue(dict(cand), channels, business_today=business_today, cfg=cfg, actor=actor,
                            run_id=run_id, now=now)
        msg = Message(channel=cand["channel"], key=cand["idempotency_key"], order_id=cand["order_id"],
                      what=f"order {cand['order_id']}", receiver="supplier")
        res = transmit(engine, queue, msg, hooks=hooks)
        if res.count in counts:
            counts[res.count] += 1
        if res.kind == "deduplicated":
            counts["deduplicated"] += 1
        if res.possible_duplicate and res.kind == "sent":
            counts["possible_duplicates"] += 1
        if res.count == "sent" and kept_on_disk(res.ref):
            counts["kept_on_disk"] += 1
    return counts

"""Drain orders.outbox: one message per transaction, claimed with FOR UPDATE SKIP LOCKED.

Exactly-once at the supplier despite crashes: the outbox row stays locked (and un-updated) while sending;
if the process dies after the supplier accepted but before the commit, the row is simply pending again and
the next run resends with the same idempotency key (= order id):
* api: the supplier dedupes on the ``Idempotency-Key`` header;
* edifact / email without API key: the file named by the order id already exists -> treated as sent;
* email via SendGrid: a 'sending' claim and a 'sent' marker are committed to orders.sent_ledger on a
  separate connection around the API call; a 'sent' marker -> treated as sent. (A crash between SendGrid's
  202 and the marker write is the one window left: the claim without marker is resent - at-least-once - and
  an alert ``email_possible_duplicate`` is recorded.)
Orders whose delivery date is before ``business_today`` (``replenish.clock.today()``) are never sent.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from replenish.orders.store import add_event, set_status


class SimulatedCrash(BaseException):
    """Raised by test hooks to emulate a process kill (BaseException: never caught as a send failure)."""


@dataclass
class DispatchConfig:
    max_attempts: int = 5
    base_delay_s: float = 30.0
    max_delay_s: float = 3600.0
    jitter: float = 0.25


def backoff_seconds(attempts: int, cfg: DispatchConfig, rng: random.Random | None = None) -> float:
    base = min(cfg.base_delay_s * (2 ** max(attempts - 1, 0)), cfg.max_delay_s)
    return base * (1 + (rng or random).uniform(0, cfg.jitter))


def _ledger(engine: Engine, key: str, channel: str, state: str, ref: str | None = None) -> None:
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO orders.sent_ledger (idempotency_key, channel, state, external_ref) "
                "VALUES (:k, :c, :s, :r) ON CONFLICT DO NOTHING"
            ),
            {"k": key, "c": channel, "s": state, "r": ref},
        )


def _ledger_state(conn: Connection, key: str, channel: str) -> dict[str, str | None]:
    return dict(
        conn.execute(
            text("SELECT state, external_ref FROM orders.sent_ledger WHERE idempotency_key = :k AND channel = :c"),
            {"k": key, "c": channel},
        ).fetchall()
    )


def _alert(conn: Connection, order_id: str, kind: str, message: str) -> None:
    conn.execute(
        text("INSERT INTO orders.alerts (order_id, kind, message) VALUES (:o, :k, :m)"),
        {"o": order_id, "k": kind, "m": message},
    )


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
    """Send due outbox messages (all, or only those of ``order_ids``: "send now" sends its own order only)."""
    cfg = cfg or DispatchConfig()
    hooks = hooks or {}
    counts = {"sent": 0, "failed": 0, "dead": 0, "deduplicated": 0}
    seen: set[int] = set()
    while limit is None or len(seen) < limit:
        with engine.begin() as conn:
            row = (
                conn.execute(
                    text("""
                SELECT o.message_id, o.order_id, o.idempotency_key, o.channel, o.payload, o.attempts,
                       p.delivery_date, p.status AS order_status
                FROM orders.outbox o JOIN orders.purchase_orders p ON p.order_id = o.order_id
                WHERE o.status IN ('pending', 'retry') AND o.next_attempt_at <= COALESCE(:now, now())
                  AND NOT (o.message_id = ANY(:seen))
                  AND (CAST(:ids AS text[]) IS NULL OR o.order_id = ANY(CAST(:ids AS text[])))
                ORDER BY o.next_attempt_at, o.message_id
                FOR UPDATE OF o SKIP LOCKED LIMIT 1"""),
                    {"now": now, "seen": list(seen) or [0], "ids": order_ids},
                )
                .mappings()
                .first()
            )
            if row is None:
                break
            seen.add(row["message_id"])
            mid, oid, key, chname = row["message_id"], row["order_id"], row["idempotency_key"], row["channel"]
            actor = f"dispatcher:{run_id or 'adhoc'}"
            if row["delivery_date"] < business_today:
                conn.execute(
                    text("UPDATE orders.outbox SET status = 'dead_letter', last_error = :e WHERE message_id = :m"),
                    {"e": f"delivery date {row['delivery_date']} before business today {business_today}", "m": mid},
                )
                set_status(conn, oid, "dead_letter", actor)
                _alert(conn, oid, "delivery_date_passed", f"not sent: delivery {row['delivery_date']} is in the past")
                counts["dead"] += 1
                continue
            attempts = row["attempts"] + 1
            channel = channels.get(chname)
            try:
                if channel is None:
                    raise RuntimeError(f"no channel {chname!r} configured")
                ref = channel.already_sent(key)
                if ref is None and channel.uses_ledger:
                    led = _ledger_state(conn, key, chname)
                    ref = led.get("sent") if "sent" in led else None
                    if ref is None and "sending" in led:
                        _alert(conn, oid, "email_possible_duplicate", "previous attempt claimed without sent marker")
                if ref is not None:
                    counts["deduplicated"] += 1
                else:
                    if channel.uses_ledger:
                        _ledger(engine, key, chname, "sending")
                    ref = channel.send(row["payload"], key)
                    if channel.uses_ledger:
                        _ledger(engine, key, chname, "sent", ref)
                if "after_send" in hooks:
                    hooks["after_send"](oid)
                conn.execute(
                    text("""UPDATE orders.outbox SET status = 'sent', attempts = :a, sent_at = now(),
                    last_error = NULL, sent_by_run = :r WHERE message_id = :m"""),
                    {"a": attempts, "r": run_id, "m": mid},
                )
                set_status(conn, oid, "sent", actor)
                add_event(conn, oid, actor, "sent_ref", None, ref)
                counts["sent"] += 1
            except Exception as exc:  # noqa: BLE001 - every send failure is recorded, SimulatedCrash is not
                err = f"{exc.__class__.__name__}: {exc}"[:1000]
                if attempts >= cfg.max_attempts:
                    conn.execute(
                        text("""UPDATE orders.outbox SET status = 'dead_letter', attempts = :a, last_error = :e
                        WHERE message_id = :m"""),
                        {"a": attempts, "e": err, "m": mid},
                    )
                    set_status(conn, oid, "failed", actor)
                    set_status(conn, oid, "dead_letter", actor)
                    _alert(conn, oid, "dead_letter", f"gave up after {attempts} attempts: {err}")
                    counts["dead"] += 1
                else:
                    delay = backoff_seconds(attempts, cfg)
                    conn.execute(
                        text("""UPDATE orders.outbox SET status = 'retry', attempts = :a, last_error = :e,
                        next_attempt_at = COALESCE(:now, now()) + make_interval(secs => :d) WHERE message_id = :m"""),
                        {"a": attempts, "e": err, "m": mid, "d": delay, "now": now},
                    )
                    set_status(conn, oid, "failed", actor)
                    set_status(conn, oid, "retry", actor)
                    counts["failed"] += 1
    return counts

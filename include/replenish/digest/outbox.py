"""Exactly one digest per buyer and business date: the orders' outbox + sent-ledger pattern.

``orders.digest_outbox`` has one row per (business_date, user_id); the idempotency key is
``digest-<date>-u<user_id>``. A repeated run refreshes the content of a row that is still unsent and
never touches a sent one. Sending follows ``replenish.orders.dispatcher``: the row is claimed with
``FOR UPDATE SKIP LOCKED``; a 'sending' claim and a 'sent' marker in ``orders.sent_ledger`` (channel
``digest``) are committed on their own connection around the SendGrid call, so a crash after
SendGrid's 202 leaves a marker and the next attempt does not mail again; without an API key the
``<key>.eml`` file in the outbox folder is the marker. Failures retry with backoff and dead-letter
after ``max_attempts`` with an alert in ``orders.alerts``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from replenish.orders.dispatcher import DispatchConfig, SimulatedCrash, _ledger, _ledger_state, backoff_seconds
from replenish.orders.store import ensure_schema as ensure_orders_schema

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from replenish.orders.channels import EmailChannel

CHANNEL = "digest"

DDL = """
CREATE TABLE IF NOT EXISTS orders.digest_outbox (
    message_id      bigserial PRIMARY KEY,
    business_date   date        NOT NULL,
    user_id         bigint      NOT NULL,
    idempotency_key text        NOT NULL UNIQUE,
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    payload         jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending',
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    run_id          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    sent_by_run     text,
    external_ref    text,
    UNIQUE (business_date, user_id)
)
"""

__all__ = ["CHANNEL", "DispatchConfig", "SimulatedCrash", "digest_key", "drain_digests", "enqueue", "ensure_schema"]


def ensure_schema(conn: Connection) -> None:
    ensure_orders_schema(conn)  # orders.sent_ledger and orders.alerts
    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('orders.digest_outbox'))")
    conn.exec_driver_sql(DDL)


def digest_key(business_date: dt.date, user_id: int) -> str:
    return f"digest-{business_date.isoformat()}-u{user_id}"


def enqueue(conn: Connection, business_date: dt.date, user_id: int, recipient: str, subject: str,
            payload: dict[str, Any], run_id: str) -> str:
    """Insert the buyer's digest, or refresh it while unsent. Returns 'new', 'refreshed' or 'already_sent'."""
    row = conn.execute(
        text("""INSERT INTO orders.digest_outbox AS o
                    (business_date, user_id, idempotency_key, recipient, subject, payload, run_id)
                VALUES (:d, :u, :k, :to, :s, CAST(:p AS jsonb), :r)
                ON CONFLICT (business_date, user_id) DO UPDATE
                   SET recipient = EXCLUDED.recipient, subject = EXCLUDED.subject, payload = EXCLUDED.payload,
                       run_id = EXCLUDED.run_id
                 WHERE o.status IN ('pending', 'retry')
                RETURNING (xmax = 0) AS inserted"""),
        {"d": business_date, "u": user_id, "k": digest_key(business_date, user_id), "to": recipient,
         "s": subject, "p": json.dumps(payload, default=str), "r": run_id},
    ).first()
    if row is None:
        return "already_sent"
    return "new" if row.inserted else "refreshed"


def _alert(conn: Connection, kind: str, message: str) -> None:
    conn.execute(text("INSERT INTO orders.alerts (order_id, kind, message) VALUES (NULL, :k, :m)"),
                 {"k": kind, "m": message})


def drain_digests(engine: Engine, channel: EmailChannel, business_date: dt.date, *, run_id: str | None = None,
                  cfg: DispatchConfig | None = None, hooks: dict | None = None) -> dict[str, int]:
    """Send the business date's pending digests, one transaction each."""
    cfg = cfg or DispatchConfig()
    hooks = hooks or {}
    counts = {"sent": 0, "deduplicated": 0, "failed": 0, "dead": 0}
    seen: list[int] = [0]
    while True:
        with engine.begin() as conn:
            row = conn.execute(
                text("""SELECT message_id, idempotency_key, recipient, subject, payload, attempts
                        FROM orders.digest_outbox
                        WHERE business_date = :d AND status IN ('pending', 'retry') AND next_attempt_at <= now()
                          AND NOT (message_id = ANY(:seen))
                        ORDER BY message_id FOR UPDATE SKIP LOCKED LIMIT 1"""),
                {"d": business_date, "seen": seen},
            ).mappings().first()
            if row is None:
                break
            seen.append(row["message_id"])
            key, attempts = row["idempotency_key"], row["attempts"] + 1
            try:
                ref = channel.already_sent(key)
                if ref is None:
                    led = _ledger_state(conn, key, CHANNEL)
                    ref = led.get("sent") if "sent" in led else None
                    if ref is None and "sending" in led:
                        _alert(conn, "digest_possible_duplicate", f"{key}: earlier attempt claimed without sent marker")
                if ref is not None:
                    counts["deduplicated"] += 1
                else:
                    _ledger(engine, key, CHANNEL, "sending")
                    body = row["payload"]
                    ref = channel.send_message(
                        to=[row["recipient"]], subject=row["subject"], text_body=body["text"],
                        html_body=body["html"], key=key, category="buyer-digest",
                    )
                    _ledger(engine, key, CHANNEL, "sent", ref)
                    counts["sent"] += 1
                if "after_send" in hooks:
                    hooks["after_send"](key)
                conn.execute(
                    text("""UPDATE orders.digest_outbox SET status = 'sent', attempts = :a, sent_at = now(),
                            last_error = NULL, sent_by_run = :r, external_ref = :ref WHERE message_id = :m"""),
                    {"a": attempts, "r": run_id, "ref": ref, "m": row["message_id"]},
                )
            except Exception as exc:  # noqa: BLE001 - every send failure is recorded; SimulatedCrash is not
                err = f"{exc.__class__.__name__}: {exc}"[:1000]
                if attempts >= cfg.max_attempts:
                    conn.execute(
                        text("""UPDATE orders.digest_outbox SET status = 'dead_letter', attempts = :a,
                                last_error = :e WHERE message_id = :m"""),
                        {"a": attempts, "e": err, "m": row["message_id"]},
                    )
                    _alert(conn, "digest_dead_letter", f"{key} to {row['recipient']}: gave up after {attempts} "
                                                       f"attempts: {err}")
                    counts["dead"] += 1
                else:
                    conn.execute(
                        text("""UPDATE orders.digest_outbox SET status = 'retry', attempts = :a, last_error = :e,
                                next_attempt_at = now() + make_interval(secs => :s) WHERE message_id = :m"""),
                        {"a": attempts, "e": err, "s": backoff_seconds(attempts, cfg), "m": row["message_id"]},
                    )
                    counts["failed"] += 1
    return counts

"""Exactly one digest per buyer and business date: the orders' outbox + sent-ledger pattern.

``orders.digest_outbox`` has one row per (business_date, user_id); the idempotency key is
``digest-<date>-u<user_id>``. A repeated run refreshes the content of a row that is still unsent and
never touches a sent one. Sending is the orders' mechanism, ``replenish.orders.sent_ledger.transmit``
(ledger channel ``digest``): the intent is committed before the SendGrid call and the outcome after it,
so a crash after SendGrid's 202 and the recorded outcome does not mail again; if the process died between
the call and that record, the resend is marked "POSSIBLE DUPLICATE" (subject and
``X-Replenish-Possible-Duplicate``; the Message-ID is the same for every attempt) and exactly one alert
``digest_possible_duplicate`` is raised. Without an API key the ``<key>.eml`` file in the outbox folder is
the marker. Failures retry with backoff and dead-letter after ``max_attempts`` with an alert in
``orders.alerts``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from replenish import clock
from replenish.orders.dispatcher import DispatchConfig, OutboxRow
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

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from replenish.orders.channels import EmailChannel

CHANNEL = "digest"

__all__ = ["CHANNEL", "DispatchConfig", "SimulatedCrash", "digest_key", "drain_digests", "enqueue"]


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


class _DigestQueue(OutboxRow):
    """One orders.digest_outbox row as a ``sent_ledger.Queue``."""

    TABLE = "orders.digest_outbox"

    def __init__(self, message_id: int, channel: EmailChannel, cfg: DispatchConfig, run_id: str | None):
        self.message_id, self.channel, self.cfg, self.run_id = message_id, channel, cfg, run_id

    def claim(self, conn: Connection) -> dict[str, Any] | None:
        row = conn.execute(
            text("""SELECT message_id, idempotency_key, recipient, subject, payload, attempts
                    FROM orders.digest_outbox
                    WHERE message_id = :m AND status IN ('pending', 'retry') AND next_attempt_at <= now()
                    FOR UPDATE"""),
            {"m": self.message_id},
        ).mappings().first()
        return dict(row) if row else None

    def found(self, row: dict[str, Any]) -> str | None:
        return self.channel.already_sent(row["idempotency_key"])

    def refuse(self, conn: Connection, row: dict[str, Any], hist: History, msg: Message) -> str | None:
        return self._stalled(conn, row, hist, msg)  # the sender died every time: do not mail yet again

    def send(self, row: dict[str, Any], possible_duplicate: bool) -> str:
        body = row["payload"]
        return self.channel.send_message(
            to=[row["recipient"]], subject=row["subject"], text_body=body["text"], html_body=body["html"],
            key=row["idempotency_key"], category="buyer-digest", possible_duplicate=possible_duplicate,
        )

    def settle(self, conn: Connection, row: dict[str, Any], result: Result, hist: History, msg: Message) -> str:
        if result.kind in ("sent", "deduplicated"):
            conn.execute(
                text("""UPDATE orders.digest_outbox SET status = 'sent', sent_at = :now, last_error = NULL,
                        sent_by_run = :r, external_ref = :ref WHERE message_id = :m"""),
                {"r": self.run_id, "ref": result.ref, "m": row["message_id"], "now": clock.now(conn)},
            )
            return "sent" if result.kind == "sent" else "deduplicated"
        return self._retry_or_dead(conn, row, result, hist, msg)

    def _dead(self, conn: Connection, row: dict[str, Any], attempts: int, err: str, hist: History,
              msg: Message) -> None:
        self._dead_letter(conn, row, err)
        alert(conn, msg, "digest_dead_letter", f"{msg.what}: gave up after {attempts} attempts: "
                                               f"{err}{uncertain_note(hist, 'buyer')}")


def drain_digests(engine: Engine, channel: EmailChannel, business_date: dt.date, *, run_id: str | None = None,
                  cfg: DispatchConfig | None = None, hooks: dict | None = None) -> dict[str, int]:
    """Send the business date's pending digests, each through ``sent_ledger.transmit``."""
    cfg = cfg or DispatchConfig()
    counts = {"sent": 0, "deduplicated": 0, "failed": 0, "dead": 0, "possible_duplicates": 0, "busy": 0}
    seen: list[int] = [0]
    while True:
        with engine.connect() as conn:
            cand = conn.execute(
                text("""SELECT message_id, idempotency_key, recipient FROM orders.digest_outbox
                        WHERE business_date = :d AND status IN ('pending', 'retry') AND next_attempt_at <= now()
                          AND NOT (message_id = ANY(:seen))
                        ORDER BY message_id LIMIT 1"""),
                {"d": business_date, "seen": seen},
            ).mappings().first()
        if cand is None:
            break
        seen.append(cand["message_id"])
        run_hook(hooks, "before_claim", cand["idempotency_key"])
        msg = Message(channel=CHANNEL, key=cand["idempotency_key"], order_id=None,
                      what=f"digest {cand['idempotency_key']} to {cand['recipient']}", receiver="buyer")
        res = transmit(engine, _DigestQueue(cand["message_id"], channel, cfg, run_id), msg, hooks=hooks)
        if res.count in counts:
            counts[res.count] += 1
        if res.possible_duplicate and res.kind == "sent":
            counts["possible_duplicates"] += 1
    return counts

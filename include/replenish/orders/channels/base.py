"""The channel interface.

``send(payload, idempotency_key, *, possible_duplicate=False) -> external_ref`` transmits once. Every message
carries the order id so a supplier can recognise a repeat (mail headers and Message-ID, the API's
``Idempotency-Key``, the EDIFACT BGM number and file name). With ``possible_duplicate`` an earlier attempt may
have reached the supplier (the sender died before recording its outcome): the message says so (subject and
header, or EDIFACT message function 7 = duplicate). ``already_sent(key)`` returns an external reference when
the receiver's side shows the message (its file is there), else None. The dispatcher records every attempt in
the send ledger (``replenish.orders.sent_ledger``).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any, Protocol

# Idempotency keys go into mail headers, file names and EDIFACT references: anything else is refused.
SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")

# The reference the e-mail channel gives an order mail it only wrote to the outbox folder (no SendGrid key): the
# dispatch counts it as sent, as the outbox goes, but no supplier has it, and every report must say so.
OUTBOX_REF_PREFIX = "eml:"


def kept_on_disk(ref: str | None) -> bool:
    """Whether a sent order's channel reference is an e-mail only written to the outbox folder (no SendGrid key)."""
    return str(ref or "").startswith(OUTBOX_REF_PREFIX)


# :func:`kept_on_disk` for SQL, of the orders.purchase_orders row aliased ``p`` (its events keep the reference)
KEPT_ON_DISK_SQL = (f"EXISTS (SELECT 1 FROM orders.order_events e WHERE e.order_id = p.order_id "
                    f"AND e.event = 'sent_ref' AND left(e.to_value, {len(OUTBOX_REF_PREFIX)}) = "
                    f"'{OUTBOX_REF_PREFIX}')")


class ChannelError(RuntimeError):
    """A transmission failed (retryable unless the dispatcher runs out of attempts).

    ``maybe_delivered``: the request may have reached the receiver anyway (the connection broke or timed out
    after the request was sent, or a gateway error): the next attempt is then a possible duplicate."""

    def __init__(self, message: str, *, maybe_delivered: bool = False):
        super().__init__(message)
        self.maybe_delivered = maybe_delivered


class Channel(Protocol):
    name: str

    def already_sent(self, idempotency_key: str) -> str | None: ...

    def send(self, payload: dict[str, Any], idempotency_key: str, *, possible_duplicate: bool = False) -> str: ...


def checked_key(key: str) -> str:
    """The key, if it is safe in a header, a file name and an EDIFACT reference (else ChannelError)."""
    if not SAFE_KEY.fullmatch(key):
        raise ChannelError(f"idempotency key {key!r} is not usable in a message (letters, digits, . _ - only)")
    return key


# HTTP answers after which the request may still have been carried out (a server error after the work was
# done, a gateway that lost the upstream's answer): resending them is a possible duplicate.
AMBIGUOUS_HTTP = frozenset({500, 502, 504})


def order_csv(payload: dict[str, Any]) -> str:
    # csv quoting: an item or store id from an export may hold the separator, a quote or a line break
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\n")
    w.writerow(["order_id", "store_id", "supplier_id", "delivery_date", "item_id", "quantity"])
    for ln in payload["lines"]:
        w.writerow([payload["order_id"], payload["store_id"], payload["supplier_id"], payload["delivery_date"],
                    ln["item_id"], ln["qty"]])
    return out.getvalue()

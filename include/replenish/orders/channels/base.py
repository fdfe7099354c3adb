"""The channel interface.

``send(payload, idempotency_key) -> external_ref`` transmits once; ``already_sent(key)`` returns an external
reference when a sent marker exists (file present, ...), else None. ``uses_ledger``: the dispatcher keeps a
local 'sending' claim / 'sent' marker in orders.sent_ledger (for channels whose receiver cannot dedupe).
"""

from __future__ import annotations

from typing import Any, Protocol


class ChannelError(RuntimeError):
    """A transmission failed (retryable unless the dispatcher runs out of attempts)."""


class Channel(Protocol):
    name: str
    uses_ledger: bool

    def already_sent(self, idempotency_key: str) -> str | None: ...

    def send(self, payload: dict[str, Any], idempotency_key: str) -> str: ...


def order_csv(payload: dict[str, Any]) -> str:
    rows = ["order_id;store_id;supplier_id;delivery_date;item_id;quantity"]
    for ln in payload["lines"]:
        rows.append(
            f"{payload['order_id']};{payload['store_id']};{payload['supplier_id']};"
            f"{payload['delivery_date']};{ln['item_id']};{ln['qty']}"
        )
    return "\n".join(rows) + "\n"

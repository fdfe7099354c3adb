"""JSON POST to the supplier's order API. Headers: ``Idempotency-Key`` (= order id: a resend after a crash is
deduplicated by the supplier; the body of a resend is byte-for-byte the same, as idempotency-key servers
require), ``X-Replenish-Order-Id``, and ``X-Replenish-Possible-Duplicate`` when an earlier attempt may have
reached the supplier (for suppliers that do not honour the key)."""

from __future__ import annotations

from typing import Any

import httpx

from replenish.orders.channels.base import AMBIGUOUS_HTTP, ChannelError, checked_key

# Failures before any byte of the request left this process: the supplier cannot have the order.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
             httpx.InvalidURL)


class SupplierApiChannel:
    name = "api"

    def __init__(self, default_url: str | None = None, timeout: float = 10.0, client: httpx.Client | None = None):
        self.default_url = default_url
        self.timeout = timeout
        self.client = client

    def already_sent(self, idempotency_key: str) -> str | None:
        return None  # the send ledger answers; the supplier dedupes on the Idempotency-Key

    def send(self, payload: dict[str, Any], idempotency_key: str, *, possible_duplicate: bool = False) -> str:
        url = (payload.get("supplier") or {}).get("api_url") or self.default_url
        if not url:
            raise ChannelError(f"no api_url for supplier {payload.get('supplier_id')}")
        key = checked_key(idempotency_key)
        headers = {"Idempotency-Key": key, "X-Replenish-Order-Id": key}
        if possible_duplicate:
            headers["X-Replenish-Possible-Duplicate"] = key
        try:
            client = self.client or httpx.Client(timeout=self.timeout)
            try:
                resp = client.post(url, json=payload, headers=headers)
            finally:
                if self.client is None:
                    client.close()
        except _NOT_SENT as exc:
            raise ChannelError(f"POST {url}: {exc.__class__.__name__}: {exc}") from exc
        except httpx.HTTPError as exc:  # the request (or part of it) went out; the answer did not come back
            raise ChannelError(f"POST {url}: {exc.__class__.__name__}: {exc}", maybe_delivered=True) from exc
        if resp.status_code >= 300:
            raise ChannelError(f"POST {url}: HTTP {resp.status_code} {resp.text[:200]}",
                               maybe_delivered=resp.status_code in AMBIGUOUS_HTTP)
        try:
            body = resp.json()
        except ValueError:
            body = {}
        ref = (body.get("supplier_order_ref") or body.get("id")) if isinstance(body, dict) else None
        return str(ref or f"http-{resp.status_code}")

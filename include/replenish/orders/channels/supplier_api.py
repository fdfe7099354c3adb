"""JSON POST to the supplier's order API with an ``Idempotency-Key`` header (= order id): a resend after a
crash is deduplicated by the supplier."""

from __future__ import annotations

from typing import Any

import httpx

from replenish.orders.channels.base import ChannelError


class SupplierApiChannel:
    name = "api"
    uses_ledger = False

    def __init__(self, default_url: str | None = None, timeout: float = 10.0, client: httpx.Client | None = None):
        self.default_url = default_url
        self.timeout = timeout
        self.client = client

    def already_sent(self, idempotency_key: str) -> str | None:
        return None  # the supplier dedupes on the Idempotency-Key

    def send(self, payload: dict[str, Any], idempotency_key: str) -> str:
        url = (payload.get("supplier") or {}).get("api_url") or self.default_url
        if not url:
            raise ChannelError(f"no api_url for supplier {payload.get('supplier_id')}")
        try:
            client = self.client or httpx.Client(timeout=self.timeout)
            try:
                resp = client.post(url, json=payload, headers={"Idempotency-Key": idempotency_key})
            finally:
                if self.client is None:
                    client.close()
        except httpx.HTTPError as exc:
            raise ChannelError(f"POST {url}: {exc.__class__.__name__}: {exc}") from exc
        if resp.status_code >= 300:
            raise ChannelError(f"POST {url}: HTTP {resp.status_code} {resp.text[:200]}")
        try:
            body = resp.json()
        except ValueError:
            body = {}
        return str(body.get("supplier_order_ref") or body.get("id") or f"http-{resp.status_code}")

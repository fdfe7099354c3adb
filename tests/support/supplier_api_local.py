"""A local supplier order API on 127.0.0.1 that honours ``Idempotency-Key`` like a careful supplier would.

Every request is kept in ``requests``; the first body per key in ``orders`` (a repeat with the same key is
answered like the original and changes nothing). ``mode``: "ok" (201 with ``supplier_order_ref``), "down"
(503), "drop" (take the order, then close the connection without an answer: a lost response), or a status
("502": take the order and answer that, as a gateway that lost the answer does).
``on_request(request)`` runs after the order is taken and before the answer (a test kills the sender there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from support.local_http import LocalHttpServer


class SupplierApiServer(LocalHttpServer):
    def __init__(self, mode: str = "ok"):
        self.requests: list[dict[str, Any]] = []
        self.orders: dict[str, Any] = {}
        self.mode = mode
        self.on_request: Callable[[dict[str, Any]], None] | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                req = {"path": self.path, "headers": dict(self.headers), "body": body}
                outer.requests.append(req)
                if outer.mode == "down":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                key = self.headers.get("Idempotency-Key")
                if key:
                    outer.orders.setdefault(key, body)
                if outer.on_request:
                    outer.on_request(req)
                if outer.mode == "drop":
                    self.close_connection = True
                    return
                if outer.mode.isdigit():
                    self.send_response(int(outer.mode))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                payload = json.dumps({"supplier_order_ref": f"SUP-{key}"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._serve(Handler)

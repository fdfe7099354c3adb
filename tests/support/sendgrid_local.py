"""A local server on 127.0.0.1 that speaks SendGrid's v3 ``POST /v3/mail/send``.

It checks what SendGrid checks before accepting a mail (bearer key; personalizations with recipients;
from; subject; non-empty content, text/plain before text/html) and answers like SendGrid: 202 with an
``X-Message-Id``, 200 in sandbox mode (validated, not delivered), 400 with an ``errors`` list, 401 for
a missing key. ``mode = "down"`` answers 503; a numeric mode ("502") takes the mail and answers that status
(a gateway that lost SendGrid's answer); ``mode = "drop"`` accepts the mail and closes the connection
without an answer (a lost response). Accepted mails are kept in ``mails``; ``on_accept(mail)`` runs after a
mail is accepted and before the answer (a test kills the sender there).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from support.local_http import LocalHttpServer


def validate(body: dict[str, Any]) -> list[dict[str, str]]:
    errors = []
    pers = body.get("personalizations") or []
    if not pers or not all(p.get("to") and all(t.get("email") for t in p["to"]) for p in pers):
        errors.append({"field": "personalizations", "message": "The personalizations field is required and must "
                                                                "have at least one personalization with a to."})
    if not (body.get("from") or {}).get("email"):
        errors.append({"field": "from.email", "message": "The from email does not contain a valid address."})
    if not body.get("subject") and not all(p.get("subject") for p in pers):
        errors.append({"field": "subject", "message": "The subject is required."})
    content = body.get("content") or []
    if not body.get("template_id"):
        if not content or not all(c.get("type") and c.get("value") for c in content):
            errors.append({"field": "content", "message": "The content value must be a string at least one "
                                                          "character in length."})
        types = [c.get("type") for c in content]
        if "text/plain" in types and "text/html" in types and types.index("text/plain") > types.index("text/html"):
            errors.append({"field": "content", "message": "If present, text/plain content must be first."})
    return errors


class SendGridServer(LocalHttpServer):
    def __init__(self, api_key: str = "SG.test", mode: str = "ok"):
        self.api_key, self.mode = api_key, mode
        self.requests: list[dict[str, Any]] = []
        self.mails: list[dict[str, Any]] = []
        self.on_accept: Callable[[dict[str, Any]], None] | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, code: int, doc: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                payload = json.dumps(doc).encode() if doc is not None else b""
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw or b"{}")
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if outer.mode == "down":
                    return self._answer(503, {"errors": [{"message": "service unavailable"}]})
                if self.path != "/v3/mail/send":
                    return self._answer(404, {"errors": [{"message": "not found"}]})
                if self.headers.get("Authorization") != f"Bearer {outer.api_key}":
                    return self._answer(401, {"errors": [{"message": "authorization required"}]})
                errors = validate(body)
                if errors:
                    return self._answer(400, {"errors": errors})
                outer.mails.append(body)
                if outer.on_accept:
                    outer.on_accept(body)
                if outer.mode == "drop":
                    self.close_connection = True
                    return None
                if outer.mode.isdigit():
                    return self._answer(int(outer.mode), {"errors": [{"message": "bad gateway"}]})
                if ((body.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"):
                    return self._answer(200)
                return self._answer(202, None, {"X-Message-Id": uuid.uuid4().hex})

        self._serve(Handler)

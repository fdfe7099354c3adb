"""Locust users of ``replenish bench web`` (run by locust in its own process: gevent patches everything there).

Credentials come from the JSON file named by REPLENISH_BENCH_CREDENTIALS (sessions and API keys created by
benchmarks.web.seed). Each simulated client takes the next session or terminal in turn and waits
0.5-1.5 s between requests, like a person paging through the queue or a till polling for proposals.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

from locust import HttpUser, between, task

_creds: dict[str, Any] = json.loads(open(os.environ["REPLENISH_BENCH_CREDENTIALS"]).read())  # noqa: SIM115
# Store managers are most of the users; buyers and the admin see far more orders per page.
_sessions = itertools.cycle(sorted(_creds["sessions"], key=lambda s: s["role"] != "store_manager"))
_keys = itertools.cycle(_creds["api_keys"])


class WebReviewer(HttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        s = next(_sessions)
        self.role = s["role"]
        self.client.cookies.set("rp_session", s["token"])

    @task
    def queue(self) -> None:
        with self.client.get("/queue", name=f"GET /queue [{self.role}]", allow_redirects=False,
                             catch_response=True) as r:
            if r.status_code != 200 or b'data-testid="queue-count"' not in r.content:
                r.failure(f"HTTP {r.status_code}: not the review queue")


class PosTerminal(HttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        k = next(_keys)
        self.client.headers["Authorization"] = f"Bearer {k['key']}"

    @task
    def proposals(self) -> None:
        with self.client.get("/api/v1/proposals", name="GET /api/v1/proposals", catch_response=True) as r:
            if r.status_code != 200 or not r.json().get("orders"):
                r.failure(f"HTTP {r.status_code}: no proposals")

"""Shared helpers of the platform tests: a seeded world, an app per test module, signing in."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
VERSION_RE = re.compile(r'data-testid="order-head" data-order-id="[^"]+" data-version="(\d+)"')


def seeded_world() -> dict[str, Any]:
    from replenish import migrations
    from replenish.database import engine
    from replenish.platform.demo import seed_demo

    with engine().begin() as conn:
        migrations.upgrade(conn)
        return seed_demo(conn)


def retire(world: dict[str, Any]) -> None:
    from replenish.database import engine
    from replenish.platform.demo import retire_demo

    with engine().begin() as conn:
        retire_demo(conn, world["tag"])


def make_app(dispatch: Callable[[], dict] | None = None, **kw: Any):
    from replenish.database import engine
    from replenish.platform.app import create_app
    from replenish.platform.ratelimit import TokenBucket

    kw.setdefault("login_limiter", TokenBucket(1000, 1000))
    kw.setdefault("api_limiter", TokenBucket(1000, 1000))
    return create_app(engine=engine(), dispatch=dispatch or (lambda order_ids=None: {}), **kw)


def login(client: TestClient, user: dict[str, str]) -> TestClient:
    page = client.get("/login")
    token = CSRF_RE.search(page.text).group(1)
    r = client.post(
        "/login",
        data={"username": user["username"], "password": user["password"], "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return client


def csrf_of(client: TestClient, path: str = "/queue") -> str:
    return CSRF_RE.search(client.get(path).text).group(1)


def version_of(client: TestClient, order_id: str) -> int:
    return int(VERSION_RE.search(client.get(f"/orders/{order_id}").text).group(1))


def service_item(item_id: int, share: float, asked: float = 0.3, days: int = 200) -> dict[str, Any]:
    """An item's row of the accuracy verdict (``service_by_item``): ``share`` of ``days`` with sales sold out, 150 of
    those days on deliveries ordered outside Replenish (90 sold out), the rest sent as proposed."""
    out = int(share * days)
    return {"item_id": item_id, "days_with_sales": days, "stockout_days": out, "stockout_share": share,
            "asked": asked, "causes": {
                "ordered_outside": {"days_with_sales": 150, "stockout_days": 90, "stockout_share": 0.6},
                "as_proposed": {"days_with_sales": days - 150, "stockout_days": out - 90,
                                "stockout_share": (out - 90) / (days - 150)}}}


@contextmanager
def night_verdict(day: Any, items: list[dict[str, Any]], overall: dict[str, Any] | None = None) -> Iterator[None]:
    """A forecast stage record of ``day`` carrying an accuracy verdict with these items and ``overall`` figures
    (default: too few rows to judge the model; what ``/service`` reads); removed afterwards."""
    import json

    from sqlalchemy import text

    from replenish.database import begin

    record = {"accuracy": {"status": "drift", "drift": [], "drift_topics": [], "overall": overall or {"rows": 0},
                           "service_by_item": items}}
    with begin() as c:
        c.execute(text("INSERT INTO ops.stage_results (run_id, business_date, stage, status, summary) "
                       "VALUES ('service-test', :d, 'forecast', 'success', CAST(:s AS jsonb))"),
                  {"d": day, "s": json.dumps(record)})
    try:
        yield
    finally:
        with begin() as c:
            c.execute(text("DELETE FROM ops.stage_results WHERE run_id = 'service-test'"))

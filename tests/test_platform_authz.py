"""Authorization matrix: every role x every order endpoint x an order in / out of its scope.

In scope, the request is made invalid on purpose (stale version, bad quantity, missing reason): the answer
must be the validation / conflict error, proving the authorization let it through without changing
anything. Out of scope, the request is valid and must get 404 - and the order must be unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from support.platform_app import csrf_of, login, make_app

from replenish.platform.demo import I1, I2

I7 = 990_007  # an item to add (not on the orders)

# principal -> (order in scope, order out of scope) as (store index, supplier index); None: admin sees all
SCOPES: dict[str, tuple[tuple[int, int], tuple[int, int] | None]] = {
    "admin": ((1, 1), None),
    "buyer1": ((1, 0), (0, 1)),  # supplier 1: store 2's order from it is in scope, store 1's supplier-2 order is not
    "buyer2": ((0, 1), (1, 0)),
    "manager1": ((0, 1), (1, 0)),  # store 1
    "manager2": ((1, 0), (0, 1)),
    "terminal": ((0, 1), (1, 0)),  # API key of store 1
}


@pytest.fixture(scope="module")
def app(world):
    return make_app()


@pytest.fixture(scope="module")
def clients(app, world) -> dict[str, TestClient]:
    out = {k: login(TestClient(app), world["users"][k]) for k in SCOPES if k != "terminal"}
    out["terminal"] = TestClient(app, headers={"Authorization": f"Bearer {world['api_keys'][world['stores'][0]]}"})
    return out


def _oid(world, where: tuple[int, int]) -> str:
    s, p = where
    return world["orders"][f"{world['stores'][s]}/{world['suppliers'][p]}/1"]


def _state(oid: str) -> tuple:
    from replenish.database import engine

    with engine().connect() as c:
        return c.execute(
            text("SELECT version, status, (SELECT count(*) FROM orders.order_events e WHERE e.order_id = p.order_id) "
                 "FROM orders.purchase_orders p WHERE order_id = :o"),
            {"o": oid},
        ).one()


Call = Callable[[TestClient, str, int, bool], Any]


def _post(path: str, data: Callable[[int, bool], dict]) -> Call:
    def call(c: TestClient, oid: str, v: int, valid: bool) -> Any:
        return c.post(path.format(oid=oid), data={**data(v, valid), "csrf_token": csrf_of(c)}, follow_redirects=False)

    return call


WEB: dict[str, tuple[Call, int]] = {
    # name: (request, status expected in scope with the deliberately invalid input)
    "view": (lambda c, oid, v, valid: c.get(f"/orders/{oid}"), 200),
    "edit": (_post(f"/orders/{{oid}}/lines/{I1}", lambda v, ok: {"qty": "18" if ok else "13", "reason": "weather",
                                                              "version": v}), 422),
    "add": (_post("/orders/{oid}/lines", lambda v, ok: {"item_id": str(I7), "qty": "2" if ok else "-2",
                                                          "reason": "weather", "version": v}), 422),
    "remove": (_post(f"/orders/{{oid}}/lines/{I2}/remove", lambda v, ok: {"reason": "other" if ok else "",
                                                                       "version": v}), 422),
    "approve": (_post("/orders/{oid}/approve", lambda v, ok: {"version": v if ok else v - 1}), 409),
    "reject": (_post("/orders/{oid}/reject", lambda v, ok: {"reason": "not_needed", "version": v if ok else v - 1}),
               409),
    "send": (_post("/orders/{oid}/send", lambda v, ok: {"version": v if ok else v - 1}), 409),
}

API: dict[str, tuple[Call, int]] = {
    "view": (lambda c, oid, v, ok: c.get(f"/api/v1/orders/{oid}"), 200),
    "patch": (lambda c, oid, v, ok: c.patch(f"/api/v1/orders/{oid}/lines", json={
        "version": v, "lines": [{"item_id": I1, "qty": 18 if ok else 13, "reason": "weather"}]}), 422),
    "approve": (lambda c, oid, v, ok: c.post(f"/api/v1/orders/{oid}/approve", json={"version": v if ok else v - 1},
                                             headers={"Idempotency-Key": uuid.uuid4().hex}), 409),
}

MATRIX = [
    (who, name, target)
    for who in SCOPES
    for name in (API if who == "terminal" else WEB)
    for target in ("own", "other")
    if not (target == "other" and SCOPES[who][1] is None)
]


@pytest.mark.parametrize(("who", "endpoint", "target"), MATRIX, ids=["-".join(m) for m in MATRIX])
def test_matrix(clients, world, who: str, endpoint: str, target: str) -> None:
    own, other = SCOPES[who]
    oid = _oid(world, own if target == "own" else other)  # type: ignore[arg-type]
    call, expected_own = (API if who == "terminal" else WEB)[endpoint]
    before = _state(oid)
    if target == "own":
        r = call(clients[who], oid, before[0], False)
        assert r.status_code == expected_own, r.text[:400]
    else:
        r = call(clients[who], oid, before[0], True)
        assert r.status_code == 404, r.text[:400]
        if who == "terminal":
            assert r.json() == {"error": {"code": "not_found", "message": "order not found"}}
        else:
            assert 'data-error-code="not_found"' in r.text and oid not in r.text
    assert _state(oid) == before  # nothing changed, nothing recorded


@pytest.mark.parametrize("who", ["buyer1", "manager1"])
def test_an_item_id_that_is_no_number_does_not_reveal_an_order_out_of_scope(clients, world, who: str) -> None:
    """Scope is checked before the line's fields: out of scope the answer stays 404 whatever the item id."""
    oid = _oid(world, SCOPES[who][1])  # type: ignore[arg-type]
    before = _state(oid)
    c = clients[who]
    for path in (f"/orders/{oid}/lines/abc", f"/orders/{oid}/lines/-1/remove"):
        r = c.post(path, data={"qty": "18", "reason": "weather", "version": before[0], "csrf_token": csrf_of(c)})
        assert r.status_code == 404 and 'data-error-code="not_found"' in r.text, (path, r.text[:300])
    assert _state(oid) == before


@pytest.mark.parametrize("who", [w for w in SCOPES if w != "terminal"])
def test_queue_and_bulk_only_in_scope(clients, world, who: str) -> None:
    own, other = SCOPES[who]
    c = clients[who]
    page = c.get("/queue", params={"status": "all"}).text
    assert f'data-order-id="{_oid(world, own)}"' in page
    if other is not None:
        assert _oid(world, other) not in page
        oid = _oid(world, other)
        before = _state(oid)
        r = c.post("/queue/approve", data={"csrf_token": csrf_of(c), "order": [f"{oid}@{before[0]}"],
                                           "confirmed": "1"})
        assert r.status_code == 409 and "not found" in r.text and _state(oid) == before


def test_unauthenticated_and_cross_channel(app, clients, world) -> None:
    oid = _oid(world, (0, 1))
    anon = TestClient(app)
    for path in ("/queue", f"/orders/{oid}"):
        assert anon.get(path, follow_redirects=False).status_code == 303
    for name, (call, _) in WEB.items():
        if name != "view":
            r = call(anon, oid, 1, True)
            # to the sign-in, which leads back to the order and says the change was not saved
            assert r.status_code == 303 and r.headers["location"] == "/login?" + urlencode(
                {"next": f"/orders/{oid}?done=not_saved"}), name
    for _name, (call, _) in API.items():
        assert call(anon, oid, 1, True).status_code == 401
    # a browser session does not open the API, an API key does not open the web pages
    assert clients["admin"].get(f"/api/v1/orders/{oid}").status_code == 401
    assert clients["terminal"].get(f"/orders/{oid}", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("typed", ["１", "1_000", " -1", "99999999999", True, "S1"])
def test_a_scope_takes_as_a_store_id_only_what_the_web_app_and_cli_take(typed):
    """int() would read a full-width '１' or '1_000' as an id, and True as store 1: a scope would then name a store
    nobody typed. Scopes go through replenish.ids.parse_id, as every other typed id."""
    from replenish.platform.accounts import _checked_scopes

    with pytest.raises(ValueError, match="store ids are whole numbers"):
        _checked_scopes({"store": [typed]})
    assert _checked_scopes({"store": [12, "13"], "category": ["bread"]}) == {"store": ["12", "13"],
                                                                              "category": ["bread"]}

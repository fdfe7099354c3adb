"""The POS API (/api/v1) and the platform CLI against the real test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from support.platform_app import make_app, retire, seeded_world

from replenish.platform.demo import I1, I2, I3


@pytest.fixture(scope="module")
def calls() -> list[int]:
    return []


@pytest.fixture(scope="module")
def client(world, calls) -> TestClient:
    return TestClient(make_app(lambda order_ids=None: calls.append(1) or {}))


def _h(world, store=0) -> dict[str, str]:
    return {"Authorization": f"Bearer {world['api_keys'][world['stores'][store]]}"}


def _order(world, store=0, supplier=0, days=1) -> str:
    return world["orders"][f"{world['stores'][store]}/{world['suppliers'][supplier]}/{days}"]


def _db():
    from replenish.database import engine

    return engine()


def test_unauthenticated_and_revoked_keys_get_401(client, world) -> None:
    from replenish.platform.api_keys import create_key, revoke_key

    for headers in ({}, {"Authorization": "Bearer rk_nope_nope"}, {"X-API-Key": "garbage"}):
        r = client.get("/api/v1/proposals", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    name = world["tag"] + "-till-temp"
    with _db().begin() as c:
        _, key = create_key(c, name, world["stores"][0])
    assert client.get("/api/v1/proposals", headers={"X-API-Key": key}).status_code == 200
    with _db().begin() as c:
        assert revoke_key(c, name)
        stored = c.execute(text("SELECT key_hash FROM platform.api_keys WHERE name = :n"), {"n": name}).scalar()
    assert key not in stored  # hashed at rest
    assert client.get("/api/v1/proposals", headers={"X-API-Key": key}).status_code == 401


def test_proposals_of_own_store_and_date(client, world) -> None:
    r = client.get("/api/v1/proposals", headers=_h(world))
    assert r.status_code == 200
    ids = {o["order_id"] for o in r.json()["orders"]}
    assert ids == {_order(world), _order(world, 0, 1), _order(world, 0, 0, 2)}
    r = client.get("/api/v1/proposals", params={"delivery_date": world["delivery_date"]}, headers=_h(world))
    assert {o["order_id"] for o in r.json()["orders"]} == {_order(world), _order(world, 0, 1)}
    order = r.json()["orders"][0]
    line = order["lines"][0]
    assert line["why"].startswith("why ") and line["proposed_qty"] == line["final_qty"]
    # every line says what it is: name (the item id when no master names it), pack, minimum, price, value
    assert {"item_name", "pack_size", "min_order_qty", "unit_price", "line_value"} <= set(line)
    assert line["item_id"] == I1 and isinstance(line["item_id"], int)  # ids are JSON numbers
    assert line["item_name"] == str(I1) and line["pack_size"] == 6 and line["min_order_qty"] == 12
    assert r.json()["store_id"] == world["stores"][0] and order["supplier_id"] in world["suppliers"]
    assert order["reason_texts"] == [f"quantity far from the usual (item {I1})", f"promotion running (item {I2})"]
    r = client.get("/api/v1/proposals", params={"delivery_date": "not-a-date"}, headers=_h(world))
    err = r.json()["error"]["fields"][0]
    assert r.status_code == 422 and (err["field"], err["in"]) == ("/delivery_date", "query")


def test_patch_lines_validation_and_locking(client, world) -> None:
    oid = _order(world)
    ok_lines = [{"item_id": I1, "qty": 18, "reason": "promotion"}]
    v = client.get(f"/api/v1/orders/{oid}", headers=_h(world)).json()["version"]
    bad = {"version": v, "lines": [{"item_id": I1, "qty": 13, "reason": "weather"},
                                   {"item_id": I3, "qty": -4, "reason": "nope"},
                                   {"item_id": 424242, "qty": 1, "reason": "weather"}]}
    r = client.patch(f"/api/v1/orders/{oid}/lines", json=bad, headers=_h(world))
    assert r.status_code == 422
    fields = {f["field"] for f in r.json()["error"]["fields"]}
    assert fields == {"/lines/0/qty", "/lines/1/qty", "/lines/1/reason", "/lines/2/item_id"}  # JSON pointers
    # an item id is a number (numeric text is read too); anything else is the field's error, never a 500
    for item in ("XX", "I1", "", -1, 2**31, 1.5, float(I1), None, [I1], True, "1_000", "1e3"):
        r = client.patch(f"/api/v1/orders/{oid}/lines", headers=_h(world),
                         json={"version": v, "lines": [{"item_id": item, "qty": 18, "reason": "promotion"}]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", (item, r.text)
        assert [f["field"] for f in r.json()["error"]["fields"]] == ["/lines/0/item_id"], (item, r.text)
    r = client.patch(f"/api/v1/orders/{oid}/lines", json={"lines": [{"item_id": I1, "qty": "x", "reason": "a"}],
                                                          "extra": 1}, headers=_h(world))
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    assert {f["field"] for f in r.json()["error"]["fields"]} == {"/lines/0/qty", "/extra", "/version"}
    # the version is required for a change (a till must say which state it changes)
    r = client.patch(f"/api/v1/orders/{oid}/lines", json={"lines": ok_lines}, headers=_h(world))
    assert r.status_code == 422 and r.json()["error"]["fields"] == [
        {"field": "/version", "in": "body", "message": "required"}]
    r = client.patch(f"/api/v1/orders/{oid}/lines", content=b'{"version": 1, "lines": [',
                     headers={**_h(world), "Content-Type": "application/json"})
    err = r.json()["error"]["fields"]
    assert r.status_code == 422 and len(err) == 1 and err[0]["field"] == "" and "not valid JSON" in err[0]["message"]
    # JSON sent without its Content-Type (curl -d sends a form's): the header is named, not "a valid dictionary"
    for media in ("application/x-www-form-urlencoded", "text/plain"):
        r = client.patch(f"/api/v1/orders/{oid}/lines", content=json.dumps({"version": v, "lines": ok_lines}),
                         headers={**_h(world), "Content-Type": media})
        assert r.status_code == 422 and r.json()["error"]["fields"] == [
            {"field": "", "in": "body",
             "message": "the body must be JSON, sent with the header Content-Type: application/json"}], r.text
    ok = {"version": v, "lines": [{"item_id": str(I1), "qty": 18, "reason": "promotion"}]}  # numeric text: read
    r = client.patch(f"/api/v1/orders/{oid}/lines", json=ok, headers=_h(world))
    assert r.status_code == 200 and r.json()["version"] == v + 1
    assert [ln for ln in r.json()["lines"] if ln["item_id"] == I1][0]["final_qty"] == 18
    r = client.patch(f"/api/v1/orders/{oid}/lines", json=ok, headers=_h(world))  # stale version: another till
    assert r.status_code == 409 and r.json()["error"]["code"] == "version_conflict"
    till = f"{world['tag']}-till-{world['stores'][0]}"
    assert f"was changed by till {till} after you read it" in r.json()["error"]["message"]
    assert r.json()["error"]["message"].endswith("read it again and repeat your change")
    # an approval of what was read: the till must read the order again, not "apply its change again"
    stale = client.post(f"/api/v1/orders/{oid}/approve", json={"version": v},
                        headers={**_h(world), "Idempotency-Key": f"{world['tag']}-stale-approve"})
    assert stale.status_code == 409 and stale.json()["error"]["message"].endswith(
        "read it again and approve it if it is still right"), stale.text
    with _db().connect() as c:
        actor = c.execute(
            text("SELECT actor FROM orders.order_events WHERE order_id = :o AND event = :e"),
            {"o": oid, "e": f"line_edited:{I1}"},
        ).scalar()
    assert actor == f"pos:{world['tag']}-till-{world['stores'][0]}"


def test_approve_is_idempotent(client, world, calls) -> None:
    oid = _order(world, 0, 1)
    h = {**_h(world), "Idempotency-Key": f"{world['tag']}-approve-1"}
    assert client.post(f"/api/v1/orders/{oid}/approve", headers=_h(world)).status_code == 422  # header required
    v = client.get(f"/api/v1/orders/{oid}", headers=_h(world)).json()["version"]
    assert client.post(f"/api/v1/orders/{oid}/approve", json={}, headers=h).status_code == 422  # version required
    h = {**_h(world), "Idempotency-Key": f"{world['tag']}-approve-1b"}
    first = client.post(f"/api/v1/orders/{oid}/approve", json={"version": v, "send_now": True}, headers=h)
    assert first.status_code == 200 and first.json()["status"] == "queued"
    assert len(calls) == 1
    again = client.post(f"/api/v1/orders/{oid}/approve", json={"version": v, "send_now": True}, headers=h)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["order_id"] == oid and len(calls) == 1  # not sent twice
    other = client.post(f"/api/v1/orders/{oid}/approve", json={"version": v, "send_now": False}, headers=h)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    # a new key for an approved order: the state machine refuses, and that answer is replayed too
    h2 = {**_h(world), "Idempotency-Key": f"{world['tag']}-approve-2"}
    r = client.post(f"/api/v1/orders/{oid}/approve", json={"version": v + 1}, headers=h2)
    assert r.status_code == 409 and r.json()["error"]["code"] == "order_locked"
    assert client.post(f"/api/v1/orders/{oid}/approve", json={"version": v + 1}, headers=h2).status_code == 409
    with _db().connect() as c:
        n = c.execute(text("SELECT count(*) FROM orders.outbox WHERE order_id = :o"), {"o": oid}).scalar()
    assert n == 1
    got = client.get(f"/api/v1/orders/{oid}", headers=_h(world)).json()
    assert got["status"] == "queued" and got["outbox"]["status"] == "pending"
    # a failed attempt: the till reads the channel's error without the server's folders
    with _db().begin() as c:
        c.execute(text("UPDATE orders.outbox SET status = 'retry', last_error = :e WHERE order_id = :o"),
                  {"o": oid, "e": "OSError: [Errno 28] No space left on device: '/srv/replenish/.state/edi/PO9.edi'"})
    got = client.get(f"/api/v1/orders/{oid}", headers=_h(world)).json()["outbox"]
    assert got["last_error"] == "OSError: [Errno 28] No space left on device: 'PO9.edi'"


def test_concurrent_approvals_with_one_key_approve_once(client, world) -> None:
    oid = _order(world, 0, 0, 2)
    h = {**_h(world), "Idempotency-Key": f"{world['tag']}-race"}
    v = client.get(f"/api/v1/orders/{oid}", headers=_h(world)).json()["version"]
    results: list[Any] = []

    def go() -> None:
        results.append(client.post(f"/api/v1/orders/{oid}/approve", json={"version": v}, headers=h))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * 4
    assert len({json.dumps(r.json(), sort_keys=True) for r in results}) == 1
    with _db().connect() as c:
        n = c.execute(text("SELECT count(*) FROM orders.outbox WHERE order_id = :o"), {"o": oid}).scalar()
    assert n == 1


class _Supplier:
    """A channel that counts what reaches the supplier (the real dispatcher drives it)."""

    name = "edifact"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def already_sent(self, idempotency_key: str) -> None:
        return None

    def send(self, payload: dict, idempotency_key: str, *, possible_duplicate: bool = False) -> str:
        self.sent.append(idempotency_key)
        return f"ref-{len(self.sent)}"


class _Killed(BaseException):
    """The process killed (SIGKILL, OOM): not an error the request could catch, as a dispatcher's exception is."""


def _sending_client(supplier: _Supplier, *, dies_after_send: bool = False) -> TestClient:
    from replenish import clock
    from replenish.orders.dispatcher import drain

    def dispatch(order_ids: list[str] | None = None) -> dict:
        with _db().connect() as c:
            today = clock.today(c)
        counts = drain(_db(), {"edifact": supplier}, business_today=today, order_ids=order_ids)
        if dies_after_send:  # the process dies once the order is sent, before the API stores its answer
            raise _Killed("killed after the send")
        return counts

    return TestClient(make_app(dispatch), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def sending_world() -> Any:
    w = seeded_world()
    yield w
    retire(w)


def test_send_now_repeat_returns_the_answer_given_first(sending_world) -> None:
    """A till that lost the reply asks again: it gets what the first call answered (sent), and nothing is sent
    twice."""
    w, supplier = sending_world, _Supplier()
    client = _sending_client(supplier)
    oid = _order(w)
    v = client.get(f"/api/v1/orders/{oid}", headers=_h(w)).json()["version"]
    h = {**_h(w), "Idempotency-Key": f"{w['tag']}-send-1"}
    first = client.post(f"/api/v1/orders/{oid}/approve", json={"version": v, "send_now": True}, headers=h)
    assert first.status_code == 200 and first.json()["status"] == "sent", first.text
    assert first.json()["outbox"]["status"] == "sent" and supplier.sent == [oid]
    assert first.json()["outbox"]["kept_on_disk"] is False  # its supplier's system has it
    again = client.post(f"/api/v1/orders/{oid}/approve", json={"version": v, "send_now": True}, headers=h)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and supplier.sent == [oid]
    assert client.get(f"/api/v1/orders/{oid}", headers=_h(w)).json()["status"] == "sent"


def test_repeat_after_a_crash_after_the_send_answers_the_order_as_it_is(sending_world) -> None:
    """The first call died between the send and storing its answer: a repeat sends nothing again and answers the
    order's current state (sent), not the state before the send."""
    w, supplier = sending_world, _Supplier()
    oid = _order(w, 0, 1)
    v = _sending_client(supplier).get(f"/api/v1/orders/{oid}", headers=_h(w)).json()["version"]
    h = {**_h(w), "Idempotency-Key": f"{w['tag']}-send-crash"}
    body = {"version": v, "send_now": True}
    died = _sending_client(supplier, dies_after_send=True).post(f"/api/v1/orders/{oid}/approve", json=body, headers=h)
    assert died.status_code == 500 and supplier.sent == [oid]
    client = _sending_client(supplier)
    again = client.post(f"/api/v1/orders/{oid}/approve", json=body, headers=h)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["status"] == "sent" and again.json()["outbox"]["status"] == "sent"
    assert again.json() == client.get(f"/api/v1/orders/{oid}", headers=_h(w)).json()
    assert supplier.sent == [oid]  # the outbox knows it is sent: the repeat did not send again


def test_line_quantities_are_json_integers(client, world) -> None:
    """"1_000", 1e3 and true were read as 1000, 1000 and 1 (pydantic's lax int): refused, nothing saved."""
    oid = _order(world, 1, 1)
    before = client.get(f"/api/v1/orders/{oid}", headers=_h(world, 1)).json()
    for qty in ('"1_000"', "1e3", "1000.0", "true", '"1000"', '" 1000"', "null", "[1000]"):  # as the JSON has it
        line = {"item_id": I2, "qty": "QTY", "reason": "promotion"}
        raw = json.dumps({"version": before["version"], "lines": [line]})
        r = client.patch(f"/api/v1/orders/{oid}/lines", content=raw.replace('"QTY"', qty).encode(),
                         headers={**_h(world, 1), "Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", (qty, r.text)
        assert [f["field"] for f in r.json()["error"]["fields"]] == ["/lines/0/qty"], (qty, r.text)
    for version in ("true", f'"{before["version"]}"', f"{before['version']}.0"):   # the version is as GET gave it
        raw = json.dumps({"version": 0, "lines": [{"item_id": I2, "qty": 18, "reason": "promotion"}]})
        r = client.patch(f"/api/v1/orders/{oid}/lines", content=raw.replace('"version": 0', f'"version": {version}')
                         .encode(), headers={**_h(world, 1), "Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "/version", (version, r.text)
    for qty, message in ((-1, "cannot be negative"), (100_001, "cannot exceed 100000")):  # the range, as before
        r = client.patch(f"/api/v1/orders/{oid}/lines", headers=_h(world, 1),
                         json={"version": before["version"], "lines": [{"item_id": I2, "qty": qty,
                                                                         "reason": "promotion"}]})
        assert r.status_code == 422 and message in r.json()["error"]["fields"][0]["message"], r.text
    assert client.get(f"/api/v1/orders/{oid}", headers=_h(world, 1)).json() == before


def test_an_item_twice_in_one_change_is_refused(client, world) -> None:
    """Two quantities for one item in one PATCH: the last one won and the version went up twice; now a 422 on the
    second entry, and nothing is saved."""
    oid = _order(world, 1, 1)
    before = client.get(f"/api/v1/orders/{oid}", headers=_h(world, 1)).json()
    lines = [{"item_id": I2, "qty": 7, "reason": "promotion"}, {"item_id": I3, "qty": 12, "reason": "weather"},
             {"item_id": str(I2), "qty": 9, "reason": "weather"}]  # numeric text is the same item
    r = client.patch(f"/api/v1/orders/{oid}/lines", json={"version": before["version"], "lines": lines},
                     headers=_h(world, 1))
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", r.text
    assert r.json()["error"]["fields"] == [{"field": "/lines/2/item_id", "in": "body",
                                            "message": f"item {I2} is already changed at /lines/0: give each "
                                                       "item once"}]
    assert client.get(f"/api/v1/orders/{oid}", headers=_h(world, 1)).json() == before


def test_receipts_idempotent_and_validated(client, world) -> None:
    import datetime as dt

    rid = f"{world['tag']}-R1"
    today = client.app.state.ctx.now().date()
    # 23:30 UTC the evening before is already today in Europe/Berlin
    body = {"receipt_id": rid, "sold_at": f"{today - dt.timedelta(days=1)}T23:30:00+00:00",
            "lines": [{"item_id": I1, "qty": 2, "unit_price": "1.25"}, {"item_id": I2, "qty": -1,
                                                                      "unit_price": 0.5}]}
    r = client.post("/api/v1/receipts", json=body, headers=_h(world))
    assert r.status_code == 201 and r.json() == {"receipt_id": rid, "status": "created",
                                                 "business_date": today.isoformat(), "total": "2.00"}
    r = client.post("/api/v1/receipts", json=body, headers=_h(world))
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    changed = {**body, "lines": body["lines"][:1]}
    r = client.post("/api/v1/receipts", json=changed, headers=_h(world))
    assert r.status_code == 409 and r.json()["error"]["code"] == "receipt_conflict"
    r = client.post("/api/v1/receipts", json=changed, headers=_h(world, 1))  # another store's till, same id
    assert r.status_code == 201 and r.json()["total"] == "2.50"  # receipt ids are per store: its own receipt
    bad = {"receipt_id": "a b", "store_id": world["stores"][1], "sold_at": f"{today}T10:00:00",
           "lines": [{"item_id": "", "qty": 1, "unit_price": -1}]}
    r = client.post("/api/v1/receipts", json=bad, headers=_h(world))
    assert r.status_code == 422
    fields = {f["field"] for f in r.json()["error"]["fields"]}
    assert fields == {"/receipt_id", "/sold_at", "/lines/0/item_id", "/lines/0/unit_price"}
    wrong_store = {**body, "receipt_id": rid + "x", "store_id": world["stores"][1]}
    r = client.post("/api/v1/receipts", json=wrong_store, headers=_h(world))
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "/store_id"
    with _db().connect() as c:
        rows = c.execute(text("SELECT store_id, business_date, total, lines FROM raw.pos_receipts "
                              "WHERE receipt_id = :r ORDER BY total"), {"r": rid}).all()
    assert [(row.store_id, float(row.total), len(row.lines)) for row in rows] == [
        (world["stores"][0], 2.0, 2), (world["stores"][1], 2.5, 1)]


def test_rate_limit_per_key(world) -> None:
    from replenish.platform.ratelimit import TokenBucket

    c = TestClient(make_app(api_limiter=TokenBucket(0.001, 3)))
    codes = [c.get("/api/v1/proposals", headers=_h(world)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = c.get("/api/v1/proposals", headers=_h(world))
    assert r.json()["error"]["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
    assert c.get("/api/v1/proposals", headers=_h(world, 1)).status_code == 200  # other key, own bucket


def test_a_key_sent_the_wrong_way_is_told_how_to_send_it(client, world) -> None:
    """A till that sends its key as "Authorization: rk_..." (no "Bearer ") heard "API key required", as if it had sent
    none."""
    key = world["api_keys"][world["stores"][0]]
    for header in (key, f"Token {key}"):
        r = client.get("/api/v1/proposals", headers={"Authorization": header})
        assert r.status_code == 401 and r.json()["error"]["message"] == (
            "the Authorization header must read 'Bearer <API key>': send 'Authorization: Bearer <API key>' or "
            "'X-API-Key: <API key>'"), r.text
    r = client.get("/api/v1/proposals")
    assert r.status_code == 401 and r.json()["error"]["message"].startswith("API key required: send 'Authorization")
    assert client.get("/api/v1/proposals", headers={"X-API-Key": key}).status_code == 200


def test_errors_are_json_without_trace(world) -> None:
    def broken(order_ids: list[str] | None = None) -> dict:
        raise RuntimeError("secret internals /etc/passwd")

    app = make_app(broken)

    @app.get("/api/v1/broken-for-test", include_in_schema=False)
    def broken_route() -> dict:
        return broken()

    c = TestClient(app, raise_server_exceptions=False)
    r = c.get("/api/v1/nope", headers=_h(world))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = c.delete("/api/v1/proposals", headers=_h(world))
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = c.post("/api/v1/receipts", content=b"{not json", headers={**_h(world), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = c.get("/api/v1/broken-for-test", headers=_h(world))
    assert r.status_code == 500 and r.json() == {"error": {"code": "internal_error",
                                                           "message": "internal error (logged on the server)"}}
    assert "Traceback" not in r.text and "passwd" not in r.text
    # "send now" whose dispatcher breaks after the approval committed: the till is told the order as it is (approved,
    # queued for the next dispatch run), not a 500 that reads as "not approved"; a repeat gets the same answer
    oid = _order(world, 1, 0)
    v = c.get(f"/api/v1/orders/{oid}", headers=_h(world, 1)).json()["version"]
    for _ in range(2):
        r = c.post(f"/api/v1/orders/{oid}/approve", json={"version": v, "send_now": True},
                   headers={**_h(world, 1), "Idempotency-Key": world["tag"] + "-boom"})
        assert r.status_code == 200 and r.json()["status"] == "queued", r.text
        assert r.json()["outbox"]["status"] == "pending" and "passwd" not in r.text


def test_openapi_and_local_docs(client) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/proposals", "/api/v1/orders", "/api/v1/orders/{order_id}", "/api/v1/orders/{order_id}/lines",
            "/api/v1/orders/{order_id}/approve", "/api/v1/receipts"} == set(spec["paths"])
    # limits as JSON Schema states them ("minimum"/"maximum": what client generators read), not pydantic's "ge"/"le"
    schemas = spec["components"]["schemas"]
    assert '"ge"' not in json.dumps(spec) and '"le"' not in json.dumps(spec)
    line, receipt = schemas["LinePatch"]["properties"], schemas["ReceiptLine"]["properties"]
    assert (line["qty"]["type"], line["qty"]["minimum"], line["qty"]["maximum"]) == ("integer", 0, 100_000)
    assert (line["item_id"]["minimum"], line["item_id"]["maximum"]) == (0, 2**31 - 1)
    number, as_text = receipt["unit_price"]["anyOf"]
    assert (number["type"], number["minimum"], number["maximum"]) == ("number", 0, 100_000)
    assert as_text == {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
    docs = client.get("/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in docs and "cdn" not in docs
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/htmx.min.js").text.startswith("/*! htmx.org")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # a real process: with --json the CLI writes its document to file descriptor 1 (see cli._stdout_for_json)
    return subprocess.run([sys.executable, "-m", "replenish.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def cli_world() -> Any:
    """A seed_demo world in a database of its own whose marts.dim_stores knows its stores: `users add` and
    `api-keys create` only accept ids the warehouse knows. Yields (world, engine, env for the CLI)."""
    from sqlalchemy import create_engine
    from support.databases import scratch_database

    from replenish.database import sqlalchemy_url
    from replenish.platform.demo import seed_demo

    url = scratch_database("replenish_cli_api_test")
    eng = create_engine(sqlalchemy_url(url), future=True)
    with eng.begin() as conn:
        w = seed_demo(conn)
        conn.exec_driver_sql("CREATE SCHEMA marts; CREATE TABLE marts.dim_stores (store_id integer, store_name text)")
        conn.execute(text("INSERT INTO marts.dim_stores VALUES (:s, :s)"), [{"s": s} for s in w["stores"]])
    yield w, eng, {"REPLENISH_DATABASE_URL": url}
    eng.dispose()


def test_cli_users_and_api_keys(cli_world) -> None:
    from replenish.platform.accounts import authenticate
    from replenish.platform.app import create_app
    from replenish.platform.ratelimit import TokenBucket

    world, eng, env = cli_world
    name = world["tag"] + "-cli"
    r = _cli("users", "add", name, "--role", "store_manager", "--store", str(world["stores"][0]), "--json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["scopes"] == {"store": [world["stores"][0]]} and len(doc["password"]) >= 12
    with eng.begin() as c:
        assert authenticate(c, name, doc["password"]) is not None
    r = _cli("users", "add", name + "2", "--role", "store_manager", env=env)
    assert r.returncode == 2 and "--store" in r.stderr
    r = _cli("users", "add", name + "3", "--role", "store_manager", "--store", "no-such-store", env=env)
    assert r.returncode == 2 and "Invalid value for '--store'" in r.stderr and "got 'no-such-store'" in r.stderr
    r = _cli("users", "add", name + "3", "--role", "store_manager", "--store", "424242", env=env)
    assert r.returncode == 2 and "unknown store id 424242" in r.stderr
    listed = json.loads(_cli("users", "list", "--json", env=env).stdout)
    assert any(u["username"] == name and u["active"] for u in listed["users"])
    assert _cli("users", "disable", name, "--json", env=env).returncode == 0
    with eng.begin() as c:
        assert authenticate(c, name, doc["password"]) is None
    r = _cli("api-keys", "create", name + "-till", "--store", str(world["stores"][1]), "--json", env=env)
    key = json.loads(r.stdout)["api_key"]
    c = TestClient(create_app(engine=eng, dispatch=lambda: {}, login_limiter=TokenBucket(1000, 1000),
                              api_limiter=TokenBucket(1000, 1000)))
    assert c.get("/api/v1/proposals", headers={"X-API-Key": key}).json()["store_id"] == world["stores"][1]
    assert _cli("api-keys", "revoke", name + "-till", "--json", env=env).returncode == 0
    assert c.get("/api/v1/proposals", headers={"X-API-Key": key}).status_code == 401
    assert _cli("api-keys", "revoke", name + "-till", env=env).returncode == 2
    # without --json: the key alone on stdout (`> key.txt` keeps the key that is shown once), words on stderr
    r = _cli("api-keys", "create", name + "-till2", "--store", str(world["stores"][1]), env=env)
    assert r.returncode == 0 and r.stdout.strip().startswith("rk_") and len(r.stdout.strip().split()) == 1
    assert "shown once" in r.stderr
    assert c.get("/api/v1/proposals", headers={"X-API-Key": r.stdout.strip()}).status_code == 200
    table = _cli("users", "list", env=env)
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:3] == ["username", "role", "active"]
    assert name in table.stdout and "{" not in table.stdout  # a table, not JSON


def test_demo_users_are_regenerated(world) -> None:
    from replenish.database import engine
    from replenish.platform.accounts import authenticate
    from replenish.platform.demo import format_demo_users, seed_demo_users

    with engine().begin() as c:
        first = seed_demo_users(c)
    with engine().begin() as c:
        second = seed_demo_users(c)
    roles = [r["role"] for r in second]
    assert roles[0] == "admin" and "buyer" in roles and "store_manager" in roles and roles[-1] == "pos_terminal"
    a1, a2 = first[0], second[0]
    assert a1["username"] == a2["username"] == "demo-admin" and a1["password"] != a2["password"]
    with engine().begin() as c:
        assert authenticate(c, "demo-admin", a1["password"]) is None
        assert authenticate(c, "demo-admin", a2["password"]) is not None
    text_out = format_demo_users(second, "http://127.0.0.1:8000")
    assert a2["password"] in text_out and "http://127.0.0.1:8000" in text_out


def test_orders_of_a_delivery_date_include_those_already_sent(client, world) -> None:
    """A till shows what arrives: GET /orders lists the key's store's orders of a delivery date in every status,
    GET /proposals only the open ones."""
    d = world["delivery_date"]
    sent = _order(world, 0, 1)
    with _db().begin() as c:
        c.execute(text("UPDATE orders.purchase_orders SET status = 'sent' WHERE order_id = :o"), {"o": sent})
    r = client.get("/api/v1/orders", params={"delivery_date": d}, headers=_h(world))
    assert r.status_code == 200 and r.json()["store_id"] == world["stores"][0]
    got = {o["order_id"]: o["status"] for o in r.json()["orders"]}
    assert set(got) == {_order(world), sent} and got[sent] == "sent"
    open_ = client.get("/api/v1/proposals", params={"delivery_date": d}, headers=_h(world))
    assert sent not in {o["order_id"] for o in open_.json()["orders"]}
    other = client.get("/api/v1/orders", params={"delivery_date": d}, headers=_h(world, 1))
    assert {o["order_id"] for o in other.json()["orders"]} == {_order(world, 1, 0), _order(world, 1, 1)}
    r = client.get("/api/v1/orders", headers=_h(world))
    err = r.json()["error"]["fields"][0]
    assert r.status_code == 422 and (err["field"], err["in"]) == ("/delivery_date", "query")

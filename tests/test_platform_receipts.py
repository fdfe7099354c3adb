"""POST /api/v1/receipts against hostile bodies: every one is a 4xx with field errors, never a 5xx, and receipt ids
are scoped per store. Real app, real database (the receipts land in raw.pos_receipts)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from support.platform_app import make_app

from replenish.platform.demo import I1

URL = "/api/v1/receipts"


@pytest.fixture(scope="module")
def client(world) -> TestClient:
    # a server error must come back as a response here, so that the test can tell it is one
    return TestClient(make_app(), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def today(client) -> dt.date:
    return client.app.state.ctx.now().date()


def _h(world, store: int = 0) -> dict[str, str]:
    return {"Authorization": f"Bearer {world['api_keys'][world['stores'][store]]}"}


def _body(rid: str, today: dt.date, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"receipt_id": rid, "sold_at": f"{today}T10:00:00+01:00",
                            "lines": [{"item_id": I1, "qty": 1, "unit_price": "1.50"}]}
    body.update(over)
    return body


def _line(**over: Any) -> list[dict[str, Any]]:
    return [{"item_id": I1, "qty": 1, "unit_price": "1.50", **over}]


# (case, body from (receipt id, today) or raw bytes, field paths the 422 must name)
Body = Callable[[str, dt.date], Any]
BAD: list[tuple[str, Body, set[str]]] = [
    ("offset-plus-20", lambda r, t: _body(r, t, sold_at=f"{t}T10:00:00+20:00"), {"/sold_at"}),
    ("offset-minus-16", lambda r, t: _body(r, t, sold_at=f"{t}T10:00:00-16:00"), {"/sold_at"}),
    ("offset-plus-23-59", lambda r, t: _body(r, t, sold_at=f"{t}T10:00:00+23:59"), {"/sold_at"}),
    ("offset-plus-24", lambda r, t: _body(r, t, sold_at=f"{t}T10:00:00+24:00"), {"/sold_at"}),
    ("offset-seconds", lambda r, t: _body(r, t, sold_at=f"{t}T10:00:00+05:30:15"), {"/sold_at"}),
    ("no-offset", lambda r, t: _body(r, t, sold_at=f"{t}T10:00:00"), {"/sold_at"}),
    ("year-0001", lambda r, t: _body(r, t, sold_at="0001-01-01T00:00:00+01:00"), {"/sold_at"}),
    ("year-0001-utc", lambda r, t: _body(r, t, sold_at="0001-01-01T00:00:00Z"), {"/sold_at"}),
    ("year-9999", lambda r, t: _body(r, t, sold_at="9999-12-31T23:59:59-15:00"), {"/sold_at"}),
    ("eight-days-ago", lambda r, t: _body(r, t, sold_at=f"{t - dt.timedelta(days=8)}T12:00:00+01:00"), {"/sold_at"}),
    ("two-days-ahead", lambda r, t: _body(r, t, sold_at=f"{t + dt.timedelta(days=2)}T12:00:00+01:00"), {"/sold_at"}),
    ("feb-30", lambda r, t: _body(r, t, sold_at="2026-02-30T10:00:00+01:00"), {"/sold_at"}),
    ("unix-seconds", lambda r, t: _body(r, t, sold_at=1_733_000_000), {"/sold_at"}),
    ("sold-at-bool", lambda r, t: _body(r, t, sold_at=True), {"/sold_at"}),
    ("sold-at-null", lambda r, t: _body(r, t, sold_at=None), {"/sold_at"}),
    ("sold-at-list", lambda r, t: _body(r, t, sold_at=[f"{t}T10:00:00Z"]), {"/sold_at"}),
    ("sold-at-missing", lambda r, t: {k: v for k, v in _body(r, t).items() if k != "sold_at"}, {"/sold_at"}),
    ("nul-item-id", lambda r, t: _body(r, t, lines=_line(item_id="I\x001")), {"/lines/0/item_id"}),
    ("escape-item-id", lambda r, t: _body(r, t, lines=_line(item_id="\x1b[2J")), {"/lines/0/item_id"}),
    ("c1-item-id", lambda r, t: _body(r, t, lines=_line(item_id="I\x851")), {"/lines/0/item_id"}),
    ("noncharacter-item-id", lambda r, t: _body(r, t, lines=_line(item_id="I\uffff")), {"/lines/0/item_id"}),
    ("newline-item-id", lambda r, t: _body(r, t, lines=_line(item_id="I\n1")), {"/lines/0/item_id"}),
    # ids are numbers (numeric text is read too): text, signs, fractions, true/false and overflow are not
    ("item-id-text", lambda r, t: _body(r, t, lines=_line(item_id="I1")), {"/lines/0/item_id"}),
    ("item-id-empty", lambda r, t: _body(r, t, lines=_line(item_id="")), {"/lines/0/item_id"}),
    ("item-id-null", lambda r, t: _body(r, t, lines=_line(item_id=None)), {"/lines/0/item_id"}),
    ("item-id-bool", lambda r, t: _body(r, t, lines=_line(item_id=True)), {"/lines/0/item_id"}),
    ("item-id-negative", lambda r, t: _body(r, t, lines=_line(item_id=-1)), {"/lines/0/item_id"}),
    ("item-id-negative-text", lambda r, t: _body(r, t, lines=_line(item_id="-1")), {"/lines/0/item_id"}),
    ("item-id-fraction", lambda r, t: _body(r, t, lines=_line(item_id=1.5)), {"/lines/0/item_id"}),
    ("item-id-whole-float", lambda r, t: _body(r, t, lines=_line(item_id=1.0)), {"/lines/0/item_id"}),
    ("store-id-whole-float", lambda r, t: _body(r, t, store_id=1.0), {"/store_id"}),
    ("item-id-exponent-text", lambda r, t: _body(r, t, lines=_line(item_id="1e3")), {"/lines/0/item_id"}),
    ("item-id-underscore-text", lambda r, t: _body(r, t, lines=_line(item_id="1_000")), {"/lines/0/item_id"}),
    ("item-id-fullwidth-text", lambda r, t: _body(r, t, lines=_line(item_id="\uff11\uff12")), {"/lines/0/item_id"}),
    ("item-id-2-31", lambda r, t: _body(r, t, lines=_line(item_id=2**31)), {"/lines/0/item_id"}),
    ("item-id-huge", lambda r, t: _body(r, t, lines=_line(item_id=10**40)), {"/lines/0/item_id"}),
    ("item-id-list", lambda r, t: _body(r, t, lines=_line(item_id=[I1])), {"/lines/0/item_id"}),
    ("nul-store-id", lambda r, t: _body(r, t, store_id="S\x00"), {"/store_id"}),
    ("store-id-text", lambda r, t: _body(r, t, store_id="S1"), {"/store_id"}),
    ("store-id-bool", lambda r, t: _body(r, t, store_id=True), {"/store_id"}),
    ("store-id-negative", lambda r, t: _body(r, t, store_id=-1), {"/store_id"}),
    ("store-id-2-31", lambda r, t: _body(r, t, store_id=2**31), {"/store_id"}),
    ("nul-receipt-id", lambda r, t: _body(r + "\x00", t), {"/receipt_id"}),
    ("receipt-id-101", lambda r, t: _body("R" * 101, t), {"/receipt_id"}),
    ("receipt-id-int", lambda r, t: _body(12345, t), {"/receipt_id"}),
    ("qty-1e400", lambda r, t: json.dumps(_body(r, t)).replace('"qty": 1', '"qty": 1e400'), {"/lines/0/qty"}),
    # Python's JSON reader refuses integers over 4,300 digits; FastAPI answers that 400 bad_request (no field)
    ("qty-5000-digits", lambda r, t: json.dumps(_body(r, t)).replace('"qty": 1', '"qty": 1' + "0" * 5000), set()),
    ("qty-nan-text", lambda r, t: _body(r, t, lines=_line(qty="NaN")), {"/lines/0/qty"}),
    ("qty-nan-json", lambda r, t: json.dumps(_body(r, t)).replace('"qty": 1', '"qty": NaN'), {"/lines/0/qty"}),
    ("qty-infinity", lambda r, t: _body(r, t, lines=_line(qty="Infinity")), {"/lines/0/qty"}),
    ("qty-11-digits", lambda r, t: _body(r, t, lines=_line(qty=12345678901)), {"/lines/0/qty"}),
    ("qty-4-decimals", lambda r, t: _body(r, t, lines=_line(qty="1.0001")), {"/lines/0/qty"}),
    ("qty-bool", lambda r, t: _body(r, t, lines=_line(qty=True)), {"/lines/0/qty"}),
    ("qty-list", lambda r, t: _body(r, t, lines=_line(qty=[1])), {"/lines/0/qty"}),
    ("price-negative", lambda r, t: _body(r, t, lines=_line(unit_price=-1)), {"/lines/0/unit_price"}),
    # text is plain decimal notation: Python's Decimal would read "1_0" as 10 and "1e1" as 10
    ("qty-and-price-underscores", lambda r, t: _body(r, t, lines=_line(qty="1_000", unit_price="1_0")),
     {"/lines/0/qty", "/lines/0/unit_price"}),
    ("qty-exponent-text", lambda r, t: _body(r, t, lines=_line(qty="1e3")), {"/lines/0/qty"}),
    ("price-exponent-text", lambda r, t: _body(r, t, lines=_line(unit_price="1e1")), {"/lines/0/unit_price"}),
    ("price-spaces", lambda r, t: _body(r, t, lines=_line(unit_price=" 1.50 ")), {"/lines/0/unit_price"}),
    ("price-plus", lambda r, t: _body(r, t, lines=_line(unit_price="+1.50")), {"/lines/0/unit_price"}),
    ("price-no-leading-digit", lambda r, t: _body(r, t, lines=_line(unit_price=".5")), {"/lines/0/unit_price"}),
    ("price-fullwidth", lambda r, t: _body(r, t, lines=_line(unit_price="\uff11")), {"/lines/0/unit_price"}),
    ("price-nan-text", lambda r, t: _body(r, t, lines=_line(unit_price="NaN")), {"/lines/0/unit_price"}),
    ("price-bool", lambda r, t: _body(r, t, lines=_line(unit_price=True)), {"/lines/0/unit_price"}),
    ("price-3-decimals", lambda r, t: _body(r, t, lines=_line(unit_price="1.255")), {"/lines/0/unit_price"}),
    ("price-huge", lambda r, t: _body(r, t, lines=_line(unit_price="1e30")), {"/lines/0/unit_price"}),
    ("lines-empty", lambda r, t: _body(r, t, lines=[]), {"/lines"}),
    ("lines-501", lambda r, t: _body(r, t, lines=_line() * 501), {"/lines"}),
    ("lines-object", lambda r, t: _body(r, t, lines={"item_id": "I1"}), {"/lines"}),
    ("line-string", lambda r, t: _body(r, t, lines=["I1"]), {"/lines/0"}),
    ("line-extra-field", lambda r, t: _body(r, t, lines=_line(discount=1)), {"/lines/0/discount"}),
    ("extra-field", lambda r, t: _body(r, t, till="T1"), {"/till"}),
    ("body-array", lambda r, t: [_body(r, t)], {""}),
    ("body-string", lambda r, t: "receipt", {""}),
    ("body-not-json", lambda r, t: b"{receipt_id: 1", set()),  # field: the position of the JSON error
    ("body-nul-escape", lambda r, t: json.dumps(_body(r, t)).replace(f'"item_id": {I1}', '"item_id": "9\\u00001"'),
     {"/lines/0/item_id"}),
]


@pytest.mark.parametrize("name,make,fields", BAD, ids=[b[0] for b in BAD])
def test_hostile_receipt_is_422_with_field_paths(client, world, today, name: str, make: Body,
                                                 fields: set[str]) -> None:
    rid = f"{world['tag']}-bad-{name}"
    body = make(rid, today)
    if isinstance(body, str | bytes) and name != "body-string":
        r = client.post(URL, content=body if isinstance(body, bytes) else body.encode(),
                        headers={**_h(world), "Content-Type": "application/json"})
    else:
        r = client.post(URL, json=body, headers=_h(world))
    err = r.json()["error"]
    if name == "qty-5000-digits":
        assert r.status_code == 400 and err["code"] == "bad_request", r.text[:500]
    else:
        assert r.status_code == 422 and err["code"] == "validation_error", (r.status_code, r.text[:500])
        got = {f["field"] for f in err["fields"]}
        assert got and fields <= got, got
        # the message names what is wrong too, whichever check found it (it read a bare "invalid input" when the
        # business date or the key's store refused the receipt)
        first = err["fields"][0]
        assert err["message"].startswith(f"invalid input: {first['field'] or first['in']}: {first['message']}"), err
    assert "Traceback" not in r.text and "psycopg" not in r.text
    with client.app.state.ctx.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM raw.pos_receipts WHERE receipt_id = :r"), {"r": rid}).scalar() == 0


def test_the_offset_and_window_limits_themselves_are_accepted(client, world, today) -> None:
    ok = [f"{today}T12:00:00+15:59", f"{today}T12:00:00-15:59",
          f"{today - dt.timedelta(days=7)}T12:00:00+01:00", f"{today + dt.timedelta(days=1)}T12:00:00+01:00"]
    for i, sold_at in enumerate(ok):
        r = client.post(URL, json=_body(f"{world['tag']}-edge-{i}", today, sold_at=sold_at), headers=_h(world))
        assert r.status_code == 201, (sold_at, r.text)


def test_plain_decimal_text_is_read(client, world, today) -> None:
    lines = [{"item_id": I1, "qty": "-1.5", "unit_price": "10"}, {"item_id": I1, "qty": "2", "unit_price": "0.25"},
             {"item_id": I1, "qty": 3, "unit_price": 1.5}]
    r = client.post(URL, json=_body(f"{world['tag']}-text-amounts", today, lines=lines), headers=_h(world))
    assert r.status_code == 201 and r.json()["total"] == "-10.00", r.text


def test_ids_as_numeric_text_are_the_same_receipt(client, world, today) -> None:
    """Tills written before ids were numbers send them as text: the same receipt, stored with integer ids."""
    rid = f"{world['tag']}-text-ids"
    as_text = _body(rid, today, store_id=str(world["stores"][0]), lines=_line(item_id=str(I1)))
    r = client.post(URL, json=as_text, headers=_h(world))
    assert r.status_code == 201, r.text
    r = client.post(URL, json=_body(rid, today, store_id=world["stores"][0]), headers=_h(world))
    assert r.status_code == 200 and r.json()["status"] == "duplicate"  # numbers: the same receipt again
    with client.app.state.ctx.engine.connect() as c:
        row = c.execute(text("SELECT store_id, lines FROM raw.pos_receipts WHERE receipt_id = :r"), {"r": rid}).one()
    assert row.store_id == world["stores"][0] and row.lines[0]["item_id"] == I1


def test_receipt_ids_are_scoped_per_store(client, world, today) -> None:
    rid = f"{world['tag']}-shared"
    a = _body(rid, today)
    b = _body(rid, today, lines=_line(qty=3))
    assert client.post(URL, json=a, headers=_h(world, 0)).status_code == 201
    r = client.post(URL, json=b, headers=_h(world, 1))  # the other store's till uses the same id
    assert r.status_code == 201 and r.json()["status"] == "created" and r.json()["total"] == "4.50"
    r = client.post(URL, json=a, headers=_h(world, 0))  # a repeat from the same store stays idempotent
    assert r.status_code == 200 and r.json()["status"] == "duplicate" and r.json()["total"] == "1.50"
    r = client.post(URL, json=b, headers=_h(world, 1))
    assert r.status_code == 200 and r.json()["status"] == "duplicate" and r.json()["total"] == "4.50"
    r = client.post(URL, json=b, headers=_h(world, 0))  # other content under store 0's own id: a conflict
    assert r.status_code == 409 and r.json()["error"]["code"] == "receipt_conflict"
    with client.app.state.ctx.engine.connect() as c:
        rows = c.execute(text("SELECT store_id, total FROM raw.pos_receipts WHERE receipt_id = :r ORDER BY total"),
                         {"r": rid}).all()
    assert [(row.store_id, str(row.total)) for row in rows] == [(world["stores"][0], "1.50"),
                                                               (world["stores"][1], "4.50")]


def test_receipt_table_key_is_store_and_receipt_id(client) -> None:
    with client.app.state.ctx.engine.connect() as c:
        cols = c.execute(text(
            "SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_constraint p "
            "CROSS JOIN LATERAL unnest(p.conkey) WITH ORDINALITY k(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = p.conrelid AND a.attnum = k.attnum "
            "WHERE p.conrelid = 'raw.pos_receipts'::regclass AND p.contype = 'p'")).scalar()
    assert cols == ["store_id", "receipt_id"]

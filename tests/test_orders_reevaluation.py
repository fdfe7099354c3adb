"""Release decides again every order the system re-proposes that no person has touched; never one a person (or a
cutoff action) has settled. Real PostgreSQL, the production release and cutoff code."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import text

from replenish import clock, migrations
from replenish.orders.cutoff import enforce_cutoffs
from replenish.orders.order_tables import add_event, edit_line, set_status
from replenish.orders.stages import release

BUSINESS = dt.date(2031, 6, 2) + dt.timedelta(days=uuid.uuid4().int % 300)  # a date of this run only
ORDER_DATE = clock.order_date_for(BUSINESS)
NIGHT = clock.end_of_business_day(BUSINESS) + dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def eng():
    from replenish.database import engine

    e = engine()
    migrations.upgrade(e)
    return e


def _order(conn, name: str, *, cutoff_hours: float = 13.0) -> str:
    oid = f"RE-{name}-{uuid.uuid4().hex[:10].upper()}"
    conn.execute(
        text("""INSERT INTO orders.purchase_orders (order_id, store_id, supplier_id, delivery_date, order_date,
                    cutoff_at, status, reasons, channel, order_value)
                VALUES (:o, :s, 1, :dd, :od, :cut, 'proposed', '{}', 'edifact', 10)"""),
        {"o": oid, "s": 200_000_000 + uuid.uuid4().int % 10**8,  # a store of this order only
         "dd": ORDER_DATE + dt.timedelta(days=1), "od": ORDER_DATE,
         "cut": NIGHT + dt.timedelta(hours=cutoff_hours)},
    )
    conn.execute(text("INSERT INTO orders.order_lines (order_id, item_id, proposed_qty, final_qty, explanation) "
                      "VALUES (:o, 1, 10, 10, '{}')"), {"o": oid})
    add_event(conn, oid, "system:propose", "created", None, "run-1")
    return oid


def _state(eng, oid: str) -> tuple:
    with eng.connect() as c:
        return c.execute(text("SELECT status, reasons, cutoff_action FROM orders.purchase_orders WHERE order_id = :o"),
                         {"o": oid}).one()


def _events(eng, oid: str) -> list[tuple]:
    with eng.connect() as c:
        return [tuple(r) for r in c.execute(text("SELECT actor, event, from_value, to_value FROM orders.order_events "
                                                 "WHERE order_id = :o ORDER BY event_id"), {"o": oid})]


def test_release_redecides_untouched_orders_only(eng):
    with eng.begin() as c:
        untouched = _order(c, "untouched")
        capped = _order(c, "capped")
        c.execute(text("UPDATE orders.order_lines SET final_qty = 6, edited_by = 'release:r0:rules-v3' "
                       "WHERE order_id = :o"), {"o": capped})
        edited = _order(c, "edited")
        edit_line(c, edited, 1, 12, actor="anna", reason="local_event")
        rejected_look = _order(c, "person-status")
        set_status(c, rejected_look, "in_review", "anna")
        escalated = _order(c, "escalated", cutoff_hours=-0.5)
        late = _order(c, "late", cutoff_hours=-2)
    assert enforce_cutoffs(eng, NIGHT, business_today=ORDER_DATE)["escalate"] >= 2

    first = release(BUSINESS, "run-1", now=NIGHT)
    # no quality gate ran for this date in the test database: the cautious answer is review, with its reason
    for oid in (untouched, capped):
        status, reasons, _ = _state(eng, oid)
        assert status == "in_review" and "quality_gate_missing" in reasons
    for oid in (edited, rejected_look):
        assert _state(eng, oid)[1] == []  # a person's order: release never decided it
    for oid in (escalated, late):
        status, reasons, action = _state(eng, oid)
        assert action == "escalate" and reasons == ["cutoff_escalated"]
    assert first["review"] >= 2

    # a second release (a re-run) decides the same orders again: same reasons, no new status event
    before = {oid: _events(eng, oid) for oid in (untouched, escalated)}
    release(BUSINESS, "run-2", now=NIGHT)
    assert {oid: _events(eng, oid) for oid in (untouched, escalated)} == before

    # the cutoff action ran once: one event, one alert, however often dispatch runs
    enforce_cutoffs(eng, NIGHT + dt.timedelta(hours=2), business_today=ORDER_DATE)
    with eng.connect() as c:
        alerts = c.execute(text("SELECT count(*) FROM orders.alerts WHERE order_id = :o"), {"o": escalated}).scalar()
    assert alerts == 1
    assert sum(1 for e in _events(eng, escalated) if e[1] == "escalated") == 1


def test_reasons_accumulate_through_the_cutoff(eng):
    with eng.begin() as c:
        oid = _order(c, "accumulate", cutoff_hours=3)
    release(BUSINESS, "run-3", now=NIGHT)
    held = _state(eng, oid)[1]
    assert held and "cutoff_escalated" not in held
    enforce_cutoffs(eng, NIGHT + dt.timedelta(hours=4), business_today=ORDER_DATE)
    status, reasons, action = _state(eng, oid)
    assert status == "in_review" and action == "escalate"
    assert reasons == [*held, "cutoff_escalated"]  # the review reasons stay; the escalation is added
    # and a later release does not touch it any more
    release(BUSINESS, "run-4", now=NIGHT + dt.timedelta(hours=5))
    assert _state(eng, oid)[1] == [*held, "cutoff_escalated"]

"""The platform's web app over HTTP (TestClient) against the real test database.

Sign-in, cookies, CSRF, rate limit, review queue, order edits with their validation, optimistic locking
between two devices, add/remove lines, approve/reject/bulk approve, "send now" through the outbox and the
real dispatcher (EDIFACT channel writing to a temporary folder), and the audit trail.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from platform_support import CSRF_RE, csrf_of, login, make_app, retire, seeded_world, version_of
from sqlalchemy import text


@pytest.fixture(scope="module")
def world() -> Any:
    w = seeded_world()
    yield w
    retire(w)


@pytest.fixture(scope="module")
def app(world, tmp_path_factory):
    from replenish import clock
    from replenish.database import engine
    from replenish.orders.channels import EdifactChannel
    from replenish.orders.dispatcher import drain

    edi = tmp_path_factory.mktemp("edi")

    def dispatch(order_ids: list[str] | None = None) -> dict:
        return drain(engine(), {"edifact": EdifactChannel(edi)}, business_today=clock.today(), order_ids=order_ids,
                     run_id="web-test")

    a = make_app(dispatch)
    a.state.edi_dir = edi
    return a


def _client(app, world, who: str) -> TestClient:
    return login(TestClient(app), world["users"][who])


def _order(world, store=0, supplier=0, days=1) -> str:
    return world["orders"][f"{world['stores'][store]}/{world['suppliers'][supplier]}/{days}"]


def _events(order_id: str) -> list[tuple]:
    from replenish.database import engine

    with engine().connect() as c:
        return c.execute(
            text("SELECT actor, event, from_value, to_value FROM orders.order_events WHERE order_id = :o "
                 "ORDER BY event_id"),
            {"o": order_id},
        ).fetchall()


# ------------------------------------------------------------------------------------------------ sign-in
def test_pages_need_sign_in_and_cookies_are_safe(app, world) -> None:
    c = TestClient(app)
    r = c.get("/queue?store_id=x", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    page = c.get("/login")
    token = CSRF_RE.search(page.text).group(1)
    u = world["users"]["manager1"]
    bad = c.post("/login", data={"username": u["username"], "password": "wrong", "csrf_token": token})
    assert bad.status_code == 401 and "Wrong username or password" in bad.text
    unknown = c.post("/login", data={"username": "nobody-" + world["tag"], "password": "x", "csrf_token": token})
    assert unknown.status_code == 401 and "Wrong username or password" in unknown.text  # no user enumeration
    no_csrf = TestClient(app).post("/login", data={"username": u["username"], "password": u["password"]})
    assert no_csrf.status_code == 403
    ok = c.post("/login", data={"username": u["username"], "password": u["password"], "csrf_token": token,
                                "next": "//evil.example/x"}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/queue"  # no open redirect
    cookie = [h for h in ok.headers.get_list("set-cookie") if h.startswith("rp_session=")][0].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    assert c.get("/queue").status_code == 200
    # sign-out ends the server-side session: the old cookie is dead
    old = c.cookies.get("rp_session")
    r = c.post("/logout", data={"csrf_token": csrf_of(c)}, follow_redirects=False)
    assert r.status_code == 303
    stale = TestClient(app, cookies={"rp_session": old})
    assert stale.get("/queue", follow_redirects=False).status_code == 303


def test_secure_cookie_flag_behind_tls(world) -> None:
    from replenish.settings import get_settings

    app = make_app(settings=get_settings().model_copy(update={"secure_cookies": True}))
    first = TestClient(app).get("/login")  # plain http behind a TLS proxy: the flag comes from the setting
    assert "secure" in first.headers["set-cookie"].lower()
    c = TestClient(app, base_url="https://testserver")  # the client only returns Secure cookies over https
    token = CSRF_RE.search(c.get("/login").text).group(1)
    u = world["users"]["admin"]
    ok = c.post("/login", data={"username": u["username"], "password": u["password"], "csrf_token": token},
                follow_redirects=False)
    cookie = [h for h in ok.headers.get_list("set-cookie") if h.startswith("rp_session=")][0].lower()
    assert "secure" in cookie and "httponly" in cookie


def test_login_rate_limit(world) -> None:
    from replenish.database import engine
    from replenish.platform.accounts import add_user
    from replenish.platform.ratelimit import TokenBucket

    app = make_app(login_limiter=TokenBucket(5 / 60, 5))
    c = TestClient(app)
    token = CSRF_RE.search(c.get("/login").text).group(1)
    u = {"username": world["tag"] + "-ratelimited"}  # its own account: the failures below also lock it a while
    with engine().begin() as conn:
        u["password"] = add_user(conn, u["username"], "r@example.com", "buyer", scopes={"supplier": ["x"]})[1]
    codes = [
        c.post("/login", data={"username": u["username"], "password": "nope", "csrf_token": token}).status_code
        for _ in range(6)
    ]
    assert codes == [401] * 5 + [429]
    # even the right password is refused while the bucket is empty
    r = c.post("/login", data={"username": u["username"], "password": u["password"], "csrf_token": token})
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_disabled_user_loses_session(app, world) -> None:
    from replenish.database import engine
    from replenish.platform.accounts import add_user, disable_user

    name = world["tag"] + "-temp"
    with engine().begin() as conn:
        _, pw = add_user(conn, name, "t@example.com", "admin")
    c = login(TestClient(app), {"username": name, "password": pw})
    assert c.get("/queue").status_code == 200
    with engine().begin() as conn:
        disable_user(conn, name)
    assert c.get("/queue", follow_redirects=False).status_code == 303


# ------------------------------------------------------------------------------------------------- queue
def test_queue_groups_filters_reasons_countdown(app, world) -> None:
    c = _client(app, world, "buyer1")
    page = c.get("/queue").text
    ids = set(re.findall(r'data-testid="queue-order" data-order-id="([^"]+)"', page))
    mine = {o for k, o in world["orders"].items() if k.split("/")[1] == world["suppliers"][0]}
    assert ids >= mine and not ids & (set(world["orders"].values()) - mine)
    assert 'data-testid="queue-group"' in page and 'data-reason="max_deviation"' in page
    assert "quantity far from the usual" in page  # reason codes are shown in words, the code as a tooltip
    assert re.search(r'data-testid="cutoff-countdown" data-cutoff="[^"]+">\d+h \d\dm left', page)
    only = c.get("/queue", params={"store_id": world["stores"][1]}).text
    assert set(re.findall(r'data-order-id="([^"]+)"', only)) == {_order(world, 1, 0)}
    assert 'data-testid="queue-empty"' in c.get("/queue", params={"delivery_date": "2000-01-01"}).text
    reason = c.get("/queue", params={"reason": "promotion", "status": "all"}).text
    assert _order(world) in reason
    assert c.get("/queue", params={"delivery_date": "tomorrow"}).status_code == 422


# ------------------------------------------------------------------------------------------------- order
def test_order_page_shows_why_chart_rules_and_audit(app, world) -> None:
    c = _client(app, world, "manager1")
    page = c.get(f"/orders/{_order(world)}").text
    assert "why 12: P80 demand" in page
    assert 'data-testid="sales-chart"' in page
    assert 'data-testid="pack-rule">pack 6, min 12' in page
    assert 'data-event="created"' in page and 'data-event="status"' in page


def test_edit_validation_messages(app, world) -> None:
    c = _client(app, world, "manager1")
    oid = _order(world)
    tok, v = csrf_of(c, f"/orders/{oid}"), version_of(c, oid)
    cases = {
        "-6": "cannot be negative",
        "13": "multiple of the pack size 6 (e.g. 12 or 18)",
        "6": "minimum order quantity of 12",
        "abc": "whole number",
    }
    for qty, msg in cases.items():
        r = c.post(f"/orders/{oid}/lines/I1", data={"qty": qty, "reason": "weather", "version": v,
                                                    "csrf_token": tok})
        assert r.status_code == 422 and msg in r.text, (qty, r.text[:300])
        assert 'data-field="lines[0].qty"' in r.text
    r = c.post(f"/orders/{oid}/lines/I1", data={"qty": "18", "reason": "", "version": v, "csrf_token": tok})
    assert r.status_code == 422 and "choose a reason code" in r.text
    assert version_of(c, oid) == v  # nothing was saved


def test_csrf_required_for_changes(app, world) -> None:
    c = _client(app, world, "manager1")
    oid = _order(world, 0, 1)
    v = version_of(c, oid)
    r = c.post(f"/orders/{oid}/lines/I2", data={"qty": "7", "reason": "weather", "version": v})
    assert r.status_code == 403 and 'data-error-code="csrf_failed"' in r.text
    r = c.post(f"/orders/{oid}/lines/I2", data={"qty": "7", "reason": "weather", "version": v, "csrf_token": "x"})
    assert r.status_code == 403
    # htmx sends the token as a header instead of the form field
    r = c.post(f"/orders/{oid}/lines/I2", data={"qty": "7", "reason": "weather", "version": v},
               headers={"X-CSRF-Token": csrf_of(c)}, follow_redirects=False)
    assert r.status_code == 303


def test_edit_two_devices_add_remove_and_audit(app, world) -> None:
    oid = _order(world, 0, 0, 2)
    phone, laptop = _client(app, world, "manager1"), _client(app, world, "admin")
    v = version_of(phone, oid)
    assert version_of(laptop, oid) == v
    r = phone.post(f"/orders/{oid}/lines/I1", data={"qty": "24", "reason": "promotion", "version": v,
                                                    "csrf_token": csrf_of(phone)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("done=saved")
    r = laptop.post(f"/orders/{oid}/lines/I1", data={"qty": "6", "reason": "weather", "version": v,
                                                     "csrf_token": csrf_of(laptop)})
    assert r.status_code == 409 and 'data-error-code="version_conflict"' in r.text
    assert "Someone else changed this order" in r.text
    page = laptop.get(f"/orders/{oid}").text
    assert re.search(r'data-item-id="I1".*?data-testid="final-qty">24<', page, re.S)
    # add a line, then remove it again; remove a proposed line (-> 0, kept)
    tok = csrf_of(laptop)
    v = version_of(laptop, oid)
    r = laptop.post(f"/orders/{oid}/lines", data={"item_id": "I9", "qty": "3", "reason": "local_event",
                                                  "version": v, "csrf_token": tok}, follow_redirects=False)
    assert r.status_code == 303
    r = laptop.post(f"/orders/{oid}/lines", data={"item_id": "I9", "qty": "3", "reason": "local_event",
                                                  "version": v + 1, "csrf_token": tok})
    assert r.status_code == 422 and "already on the order" in r.text
    v = version_of(laptop, oid)
    r = laptop.post(f"/orders/{oid}/lines/I9/remove", data={"reason": "other", "version": v, "csrf_token": tok},
                    follow_redirects=False)
    assert r.status_code == 303
    v = version_of(laptop, oid)
    r = laptop.post(f"/orders/{oid}/lines/I3/remove", data={"reason": "shelf_space", "version": v,
                                                           "csrf_token": tok}, follow_redirects=False)
    assert r.status_code == 303
    page = laptop.get(f"/orders/{oid}").text
    assert 'data-item-id="I9"' not in page
    assert re.search(r'data-item-id="I3".*?data-testid="final-qty">0<', page, re.S)
    ev = _events(oid)
    assert (world["users"]["manager1"]["username"], "line_edited:I1", "12", "24") in ev
    assert (world["users"]["manager1"]["username"], "edit_reason:I1", None, "promotion") in ev
    assert (world["users"]["admin"]["username"], "line_added:I9", None, "3") in ev
    assert (world["users"]["admin"]["username"], "line_removed:I9", "3", None) in ev
    assert (world["users"]["admin"]["username"], "line_edited:I3", "8", "0") in ev
    assert 'data-event="line_edited:I1"' in page


def test_approve_reject_locks_and_send_now(app, world) -> None:
    c = _client(app, world, "buyer2")
    a, b = _order(world, 0, 1), _order(world, 1, 1)
    tok = csrf_of(c)
    r = c.post(f"/orders/{b}/reject", data={"reason": "bogus", "version": version_of(c, b), "csrf_token": tok})
    assert r.status_code == 422
    r = c.post(f"/orders/{b}/reject", data={"reason": "store_closed", "version": version_of(c, b),
                                            "csrf_token": tok}, follow_redirects=False)
    assert r.status_code == 303
    assert 'data-testid="order-status">cancelled<' in c.get(f"/orders/{b}").text
    # send now: approve + outbox + dispatcher (EDIFACT file) in one click
    r = c.post(f"/orders/{a}/send", data={"version": version_of(c, a), "csrf_token": tok}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("done=sent")
    page = c.get(f"/orders/{a}").text
    assert 'data-testid="order-status">sent<' in page and 'data-outbox-status="sent"' in page
    assert list(app.state.edi_dir.glob(f"*{a}*"))
    v = version_of(c, a)
    r = c.post(f"/orders/{a}/lines/I2", data={"qty": "4", "reason": "weather", "version": v, "csrf_token": tok})
    assert r.status_code == 409 and 'data-error-code="order_locked"' in r.text
    assert 'data-testid="edit-form"' not in page  # closed orders have no edit forms


def test_bulk_approve_reports_each_order(app, world) -> None:
    c = _client(app, world, "admin")
    a, b = _order(world, 1, 0), _order(world, 0, 0)
    tok = csrf_of(c)
    stale = version_of(c, b) - 1
    r = c.post("/queue/approve", data={"csrf_token": tok, "order": [f"{a}@{version_of(c, a)}", f"{b}@{stale}"]})
    assert r.status_code == 409
    assert 'data-testid="bulk-approved-count">1 order' in r.text and "changed on another device" in r.text
    assert 'data-testid="order-status">queued<' in c.get(f"/orders/{a}").text
    assert 'data-testid="order-status">in_review<' in c.get(f"/orders/{b}").text

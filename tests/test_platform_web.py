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
from sqlalchemy import text
from support.platform_app import CSRF_RE, csrf_of, login, make_app, retire, seeded_world, version_of

from replenish.platform.demo import I1, I2, I3

I9 = 990_009  # an item added by hand (no parameters mart here: any item of the supplier may be added)


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


def _cutoff_local(order_id: str) -> tuple[Any, str]:
    """The order's cutoff in the business time zone, and that zone's name (what the pages print without JS)."""
    from zoneinfo import ZoneInfo

    from replenish.database import engine
    from replenish.settings import get_settings

    zone = get_settings().timezone
    with engine().connect() as c:
        at = c.execute(text("SELECT cutoff_at FROM orders.purchase_orders WHERE order_id = :o"),
                       {"o": order_id}).scalar()
    return at.astimezone(ZoneInfo(zone)), zone


def _line_html(page: str, item: int) -> str:
    m = re.search(rf'<article [^>]*data-item-id="{item}".*?</article>', page, re.S)
    assert m, f"no line of item {item}"
    return m.group(0)


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


def test_sign_in_returns_to_the_page_it_interrupted_and_nowhere_else() -> None:
    from replenish.platform.web import _safe_next

    for page in ("/queue", "/orders/PO-1", "/reports", "/service", "/data-docs/", "/data-docs/index.html"):
        assert _safe_next(page) == page
    for other in ("//evil.test/", "https://evil.test/queue", "/data-docs/../../pyproject.toml", "/api/v1/proposals",
                  "/orders/PO-1/send", None, ""):
        assert _safe_next(other) == "/queue", other


def test_a_change_sent_after_the_session_ended_leads_back_to_the_order_and_says_it_was_not_saved(app, world) -> None:
    """A store manager types a quantity, leaves the phone for an hour, presses Save: the session has ended. The
    sign-in says so and leads back to that order (not to the queue), which says the change was not saved."""
    from replenish.database import engine

    c = _client(app, world, "manager1")
    oid = _order(world, 0, 0)
    form = _typed(_page_form(c, oid), I1, "24", "promotion")
    with engine().begin() as conn:  # unused for longer than the idle limit
        conn.execute(text("UPDATE platform.sessions SET last_seen_at = now() - interval '1 day' WHERE user_id = "
                          "(SELECT user_id FROM platform.users WHERE username = :u)"),
                     {"u": world["users"]["manager1"]["username"]})
    r = c.post(f"/orders/{oid}", data=form, follow_redirects=False)
    assert r.status_code == 303
    sign_in = c.get(r.headers["location"])
    assert "Your session ended" in sign_in.text
    assert re.search(r'name="next" value="/orders/([^"?]+)\?done=not_saved"', sign_in.text).group(1) == oid
    u = world["users"]["manager1"]
    r = c.post("/login", data={"username": u["username"], "password": u["password"],
                               "csrf_token": CSRF_RE.search(sign_in.text).group(1),
                               "next": re.search(r'name="next" value="([^"]+)"', sign_in.text).group(1)},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/orders/{oid}?done=not_saved"
    page = c.get(r.headers["location"]).text
    assert "Not saved: your session had ended" in page
    assert re.search(rf'data-item-id="{I1}".*?name="qty"[^>]*value="12"', page, re.S)  # nothing was saved


def test_a_forms_address_opened_again_leads_to_its_page_and_errors_read_in_words(app, world) -> None:
    """The bulk confirmation stays at /queue/approve in the address bar; reloaded (or from the history) it is a GET,
    which showed "Something went wrong: Method Not Allowed". It leads to the queue now, an order's form address to
    the order; an address that is no page says so in words."""
    c = _client(app, world, "manager1")
    oid = _order(world, 0, 0)
    for path, page in (("/queue/approve", "/queue"), (f"/orders/{oid}/reject", f"/orders/{oid}"),
                       (f"/orders/{oid}/lines/{I1}", f"/orders/{oid}")):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == page, (path, r.status_code)
    r = c.get("/no-such-page")
    assert r.status_code == 404 and "There is no page at this address." in r.text and "Not Found" not in r.text
    api = c.get("/api/v1/no-such-thing")  # a program still gets the standard phrase, in the API's format
    assert api.status_code == 404 and api.json() == {"error": {"code": "not_found", "message": "Not Found"}}


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
        u["password"] = add_user(conn, u["username"], "r@example.com", "buyer",
                                 scopes={"supplier": [world["suppliers"][0]]})[1]
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
    mine = {o for k, o in world["orders"].items() if k.split("/")[1] == str(world["suppliers"][0])}
    assert ids >= mine and not ids & (set(world["orders"].values()) - mine)
    assert 'data-testid="queue-table"' in page and 'data-reason="max_deviation"' in page
    assert "quantity far from the usual" in page  # reason codes are shown in words
    assert "max_deviation:" not in page.split('data-testid="queue-table"')[1]  # ... and never as codes
    assert re.search(r'data-testid="cutoff-countdown" data-cutoff="[^"]+">\d+h \d\dm left', page)
    # the cutoff itself beside the countdown, with its time zone (as the order page's history gives it)
    local, zone = _cutoff_local(_order(world))
    row = page.split(f'data-order-id="{_order(world)}"')[1].split("</tr>")[0]
    assert re.search(rf'data-testid="cutoff-time">{local:%a %H:%M}</time> <span class="zone[^"]*">'
                     rf'\(<span data-local="zone">{re.escape(zone)}</span>\)</span></span> &middot; '
                     r'<span class="countdown[^"]*" data-testid="cutoff-countdown"', row), row
    only = c.get("/queue", params={"store_id": world["stores"][1]}).text
    assert set(re.findall(r'data-order-id="([^"]+)"', only)) == {_order(world, 1, 0)}
    assert ('data-testid="queue-empty">Nothing to review with these filters.'
            in c.get("/queue", params={"delivery_date": "2000-01-01"}).text)
    reason = c.get("/queue", params={"reason": "promotion", "status": "all"}).text
    assert _order(world) in reason
    assert c.get("/queue", params={"delivery_date": "tomorrow"}).status_code == 422
    # store and supplier filters are numbers: anything else is said on the page (422), never a server error
    for name in ("store_id", "supplier_id"):
        for bad in ("S1", "-1", "1.5", "2147483648", "１２"):
            r = c.get("/queue", params={name: bad})
            assert r.status_code == 422 and f"expected a {name[:-3]} number" in r.text, (name, bad, r.status_code)
        assert c.get("/queue.csv", params={name: "S1"}).status_code == 422


# ------------------------------------------------------------------------------------------------- order
def test_order_page_shows_why_chart_rules_and_audit(app, world) -> None:
    c = _client(app, world, "manager1")
    page = c.get(f"/orders/{_order(world)}").text
    assert "Why 12?" in page
    assert 'data-testid="sales-chart"' in page
    assert 'data-testid="pack-rule">packs of 6, at least 12' in page
    assert 'data-event="created"' in page and 'data-event="status"' in page
    assert "Order proposed by the nightly run" in page and "Status proposed → to review" in page  # words
    assert "in_review" not in page.split('data-testid="audit-trail"')[1].replace('data-event="', "")
    # the supplier's cutoff in the history's format and with the zone the history names
    local, zone = _cutoff_local(_order(world))
    assert f'(times in <span data-local="zone">{zone}</span>)' in page
    assert re.search(rf'data-testid="cutoff-time">{local:%a %d %b, %H:%M}</time> <span class="zone[^"]*">'
                     rf'\(<span data-local="zone">{re.escape(zone)}</span>\)</span>', page)


def test_edit_validation_messages(app, world) -> None:
    c = _client(app, world, "manager1")
    oid = _order(world)
    tok, v = csrf_of(c, f"/orders/{oid}"), version_of(c, oid)
    cases = {
        "-6": "cannot be negative",
        "13": "multiple of the pack size 6 (e.g. 12 or 18)",
        "6": "minimum order quantity of 12",
        "abc": "whole number",
        "1_002": "whole number",      # int() would read 1002
        "١٨": "whole number",  # Arabic-Indic 18: int() reads it too
    }
    for qty, msg in cases.items():
        r = c.post(f"/orders/{oid}/lines/{I1}", data={"qty": qty, "reason": "weather", "version": v,
                                                    "csrf_token": tok})
        assert r.status_code == 422 and msg in r.text, (qty, r.text[:300])
        assert re.search(rf'data-item-id="{I1}".*?data-testid="line-error"', r.text, re.S)
    r = c.post(f"/orders/{oid}/lines/{I1}", data={"qty": "18", "reason": "", "version": v, "csrf_token": tok})
    assert r.status_code == 422 and "Choose a reason for this change." in r.text
    # an item id in the path that is not a number: the line's field error, not a server error
    for bad in ("I1", "-1", "99999999999"):
        r = c.post(f"/orders/{oid}/lines/{bad}", data={"qty": "18", "reason": "weather", "version": v,
                                                        "csrf_token": tok})
        assert r.status_code == 422 and "item id is required: the item&#39;s number" in r.text, (bad, r.text[:300])
    r = c.post(f"/orders/{oid}/lines", data={"item_id": "no such item", "qty": "3", "reason": "weather",
                                             "version": v, "csrf_token": tok})
    assert r.status_code == 422 and "item id is required: the item&#39;s number" in r.text
    assert version_of(c, oid) == v  # nothing was saved


def test_csrf_required_for_changes(app, world) -> None:
    c = _client(app, world, "manager1")
    oid = _order(world, 0, 1)
    v = version_of(c, oid)
    r = c.post(f"/orders/{oid}/lines/{I2}", data={"qty": "7", "reason": "weather", "version": v})
    assert r.status_code == 403 and 'data-error-code="csrf_failed"' in r.text
    r = c.post(f"/orders/{oid}/lines/{I2}", data={"qty": "7", "reason": "weather", "version": v, "csrf_token": "x"})
    assert r.status_code == 403
    # htmx sends the token as a header instead of the form field
    r = c.post(f"/orders/{oid}/lines/{I2}", data={"qty": "7", "reason": "weather", "version": v},
               headers={"X-CSRF-Token": csrf_of(c)}, follow_redirects=False)
    assert r.status_code == 303


def test_a_page_opened_before_the_last_sign_in_says_not_saved_and_leads_back_to_its_order(app, world) -> None:
    """The order was open in one tab; the person signed in again in another (a new session, a new form token). Saving
    in the first tab is refused (403), in words that say nothing was saved and why, with a way back to the order:
    not "Not allowed" and the queue, as if the order were someone else's. Its Sign out says it did not sign out."""
    c = _client(app, world, "manager1")
    oid = _order(world, 0, 1)
    old_tab = _typed(_page_form(c, oid), I2, "7", "weather")
    login(c, world["users"]["manager1"])  # the other tab
    r = c.post(f"/orders/{oid}", data=old_tab)
    assert r.status_code == 403 and 'data-error-code="csrf_failed"' in r.text
    assert "<h1>Page out of date</h1>" in r.text
    assert "Nothing was saved: this page was opened before your last sign-in" in r.text
    assert re.search(rf'<a href="/orders/{oid}" data-testid="error-back">Back to the order</a>', r.text), r.text
    r = c.post("/logout", data={"csrf_token": old_tab["csrf_token"]})  # Sign out on that old page: said so
    assert r.status_code == 403 and "You are still signed in" in r.text


def test_edit_two_devices_add_remove_and_audit(app, world) -> None:
    oid = _order(world, 0, 0, 2)
    phone, laptop = _client(app, world, "manager1"), _client(app, world, "admin")
    v = version_of(phone, oid)
    assert version_of(laptop, oid) == v
    r = phone.post(f"/orders/{oid}/lines/{I1}", data={"qty": "24", "reason": "promotion", "version": v,
                                                    "csrf_token": csrf_of(phone)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("done=saved")
    r = laptop.post(f"/orders/{oid}/lines/{I1}", data={"qty": "6", "reason": "weather", "version": v,
                                                     "csrf_token": csrf_of(laptop)})
    assert r.status_code == 409 and 'data-error-code="version_conflict"' in r.text
    assert "Someone else changed this order" in r.text
    page = laptop.get(f"/orders/{oid}").text
    assert re.search(rf'data-item-id="{I1}".*?data-testid="final-qty">24<', page, re.S)
    # add a line, then remove it again; remove a proposed line (-> 0, kept)
    tok = csrf_of(laptop)
    v = version_of(laptop, oid)
    r = laptop.post(f"/orders/{oid}/lines", data={"item_id": str(I9), "qty": "3", "reason": "local_event",
                                                  "version": v, "csrf_token": tok}, follow_redirects=False)
    assert r.status_code == 303
    r = laptop.post(f"/orders/{oid}/lines", data={"item_id": str(I9), "qty": "3", "reason": "local_event",
                                                  "version": v + 1, "csrf_token": tok})
    assert r.status_code == 422 and "already on the order" in r.text
    v = version_of(laptop, oid)
    r = laptop.post(f"/orders/{oid}/lines/{I9}/remove", data={"reason": "other", "version": v, "csrf_token": tok},
                    follow_redirects=False)
    assert r.status_code == 303
    v = version_of(laptop, oid)
    r = laptop.post(f"/orders/{oid}/lines/{I3}/remove", data={"reason": "shelf_space", "version": v,
                                                           "csrf_token": tok}, follow_redirects=False)
    assert r.status_code == 303
    page = laptop.get(f"/orders/{oid}").text
    assert f'data-item-id="{I9}"' not in page
    assert re.search(rf'data-item-id="{I3}".*?data-testid="final-qty">0<', page, re.S)
    ev = _events(oid)
    assert (world["users"]["manager1"]["username"], f"line_edited:{I1}", "12", "24") in ev
    assert (world["users"]["manager1"]["username"], f"edit_reason:{I1}", None, "promotion") in ev
    assert (world["users"]["admin"]["username"], f"line_added:{I9}", None, "3") in ev
    assert (world["users"]["admin"]["username"], f"line_removed:{I9}", "3", None) in ev
    assert (world["users"]["admin"]["username"], f"line_edited:{I3}", "8", "0") in ev
    assert f'data-event="line_edited:{I1}"' in page


def test_approve_reject_locks_and_send_now(app, world) -> None:
    c = _client(app, world, "buyer2")
    a, b = _order(world, 0, 1), _order(world, 1, 1)
    tok = csrf_of(c)
    assert "Why a person decides:" in c.get(f"/orders/{b}").text
    r = c.post(f"/orders/{b}/reject", data={"reason": "bogus", "version": version_of(c, b), "csrf_token": tok})
    assert r.status_code == 422
    r = c.post(f"/orders/{b}/reject", data={"reason": "store_closed", "version": version_of(c, b),
                                            "csrf_token": tok}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/queue?done=rejected"
    page = c.get(f"/orders/{b}").text
    # a closed order keeps its reasons, but nobody decides it any more
    assert 'data-status="cancelled"' in page and "Reasons on this order:" in page and "a person decides" not in page
    # send now: approve + outbox + dispatcher (EDIFACT file) in one click
    r = c.post(f"/orders/{a}/send", data={"version": version_of(c, a), "csrf_token": tok}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("done=sent")
    page = c.get(f"/orders/{a}").text
    assert 'data-status="sent"' in page and 'data-outbox-status="sent"' in page
    assert "Sending by EDIFACT file: <strong>sent</strong>" in page    # not the channel's code "edifact"
    sent = list(app.state.edi_dir.glob(f"*{a}*"))
    assert sent
    # the history names the file the supplier got, never the server's folder it lies in (the database keeps that)
    assert f"Delivered to the supplier (file {sent[0].name})" in page
    assert str(app.state.edi_dir) not in page
    assert (None, str(sent[0])) in {(f, t) for _, e, f, t in _events(a) if e == "sent_ref"}
    v = version_of(c, a)
    r = c.post(f"/orders/{a}/lines/{I2}", data={"qty": "4", "reason": "weather", "version": v, "csrf_token": tok})
    assert r.status_code == 409 and 'data-error-code="order_locked"' in r.text
    assert 'data-testid="qty-input"' not in page  # closed orders have no quantity fields


def test_bulk_approve_reports_each_order(app, world, monkeypatch) -> None:
    c = _client(app, world, "admin")
    a, b = _order(world, 1, 0), _order(world, 0, 0)
    tok = csrf_of(c)
    stale = version_of(c, b) - 1
    picked = [f"{a}@{version_of(c, a)}", f"{b}@{stale}"]
    # nothing ticked: told so, nothing approved
    r = c.post("/queue/approve", data={"csrf_token": tok})
    assert r.status_code == 422 and "No order selected" in r.text
    # first a confirmation that names what will be sent (store and supplier, not ids), nothing approved yet
    r = c.post("/queue/approve", data={"csrf_token": tok, "order": picked})
    assert r.status_code == 200 and 'data-testid="bulk-confirm-approve">Approve and send 2 orders<' in r.text
    assert f"Store {world['stores'][1]}" in r.text and f"Supplier {world['suppliers'][0]}" in r.text
    assert 'data-status="in_review"' in c.get(f"/orders/{a}").text
    r = c.post("/queue/approve", data={"csrf_token": tok, "order": picked, "confirmed": "1"})
    assert r.status_code == 409
    assert 'data-testid="bulk-approved-count">1 order approved' in r.text
    # in words for someone who ticked it, not the order page's "(now version 3, you had 2): apply your change again"
    assert "changed by someone else after the queue was shown, so not approved unseen" in r.text
    assert "apply your change again" not in r.text and "version" not in r.text.split('data-testid="bulk-failed"')[1]
    assert f"Store {world['stores'][1]} &middot; Supplier {world['suppliers'][0]}" in r.text
    assert 'data-status="queued"' in c.get(f"/orders/{a}").text
    assert 'data-status="in_review"' in c.get(f"/orders/{b}").text
    _queued_order_says_when_the_dispatch_sends_it(c, a, monkeypatch)


def test_send_now_whose_dispatch_breaks_says_the_order_is_approved_and_goes_out_later() -> None:
    """Send now approves (committed), then runs the dispatcher. When that raises, the person saw "Something went
    wrong: internal error" and could not tell that the order was approved and queued (and approve or phone it in
    again): the order page says what happened, with nothing of the error's text."""

    def broken(order_ids: list[str] | None = None) -> dict:
        raise RuntimeError("secret internals /etc/passwd")

    world = seeded_world()
    try:
        c = login(TestClient(make_app(broken), raise_server_exceptions=False), world["users"]["manager1"])
        oid = _order(world, 0, 0)
        r = c.post(f"/orders/{oid}", data={**_page_form(c, oid), "action": "send"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/orders/{oid}?done=send_error", r.status_code
        page = c.get(r.headers["location"]).text
        assert "Approved, but sending it now failed" in page and "passwd" not in page
        assert 'data-status="queued"' in page
    finally:
        retire(world)


def test_send_now_by_mail_without_a_sendgrid_key_says_the_supplier_has_not_got_it(tmp_path) -> None:
    """Without a SendGrid key an order mail is only written to the outbox folder (the offline default); the order
    page said "Sent to the supplier." all the same, and a store manager took the order as placed."""
    from replenish import clock
    from replenish.database import engine
    from replenish.orders.channels import EmailChannel
    from replenish.orders.dispatcher import drain

    world = seeded_world()
    try:
        mail = EmailChannel(api_key=None, base_url="http://127.0.0.1:9", mail_from="replenish@example.com",
                            outbox_dir=tmp_path)

        def dispatch(order_ids: list[str] | None = None) -> dict:
            return drain(engine(), {"email": mail}, business_today=clock.today(), order_ids=order_ids,
                         run_id="web-test-mail")

        app = make_app(dispatch)
        oid = _order(world, 1, 1)
        with engine().begin() as conn:
            conn.execute(text("UPDATE orders.purchase_orders SET channel = 'email' WHERE order_id = :o"), {"o": oid})
        c = _client(app, world, "buyer2")
        r = c.post(f"/orders/{oid}/approve", data={"version": version_of(c, oid), "csrf_token": csrf_of(c)})
        assert r.status_code == 200, r.text
        with engine().begin() as conn:   # the supplier's address, as the masters would have given it
            conn.execute(text("UPDATE orders.outbox SET payload = jsonb_set(payload, '{supplier}', "
                              "'{\"email\": \"orders@supplier.example\"}') WHERE order_id = :o"), {"o": oid})
        r = c.post(f"/orders/{oid}/send", data={"version": version_of(c, oid), "csrf_token": csrf_of(c)},
                   follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].endswith("done=kept_on_disk")
        page = c.get(r.headers["location"]).text
        assert "Not e-mailed: no SendGrid key is configured" in page and "Sent to the supplier." not in page
        assert 'data-status="sent"' in page and [p.name for p in tmp_path.glob("*.eml")] == [f"{oid}.eml"]
        # a till reading the order through the API is told the same
        till = {"Authorization": f"Bearer {world['api_keys'][world['stores'][1]]}"}
        box = TestClient(app).get(f"/api/v1/orders/{oid}", headers=till).json()["outbox"]
        assert box["status"] == "sent" and box["kept_on_disk"] is True
    finally:
        retire(world)


def _queued_order_says_when_the_dispatch_sends_it(c: TestClient, order_id: str, monkeypatch) -> None:
    """An approved order goes out with the 5-minute dispatch; where that has not run for a while, it says so."""
    import datetime as dt

    from replenish import clock
    from replenish.database import begin

    last = dt.datetime(2100, 1, 1, 9, 0, tzinfo=dt.UTC)     # after any run the test database holds
    run_id = f"test-{order_id}"
    with begin() as conn:
        conn.execute(text("INSERT INTO ops.pipeline_runs (dag_id, run_id, state, started_at, finished_at) "
                          "VALUES ('order_dispatch', :r, 'success', :t, :t)"), {"r": run_id, "t": last})
    try:
        monkeypatch.setattr(clock, "wall_now", lambda: last + dt.timedelta(minutes=4))
        page = c.get(f"/orders/{order_id}").text
        assert 'data-testid="dispatch-wait" data-idle="false"' in page
        assert "It goes out with the next dispatch: every 5 minutes" in page
        monkeypatch.setattr(clock, "wall_now", lambda: last + dt.timedelta(minutes=40))
        page = c.get(f"/orders/{order_id}").text
        assert 'data-testid="dispatch-wait" data-idle="true"' in page
        assert f'but has not run since <time datetime="{last.astimezone(clock.business_tz()).isoformat()}"' in page
        assert "<strong>Send now</strong> sends it at once" in page and 'data-testid="send-now"' in page
    finally:
        with begin() as conn:
            conn.execute(text("DELETE FROM ops.pipeline_runs WHERE run_id = :r"), {"r": run_id})


def test_a_saved_line_shows_the_saved_quantity_its_value_and_its_reason(app) -> None:
    """After a save the line reads 'proposed 12 -> saved 18 = 2.16 EUR': the value next to the quantity it is for, in
    sight (not only for a screen reader), and the reason select shows the reason stored with the change; a line
    nobody changed keeps 'proposed 5 = ...'. A failed save shows what was typed, even an emptied reason."""
    from replenish.database import engine

    world = seeded_world()  # its own orders: the module's are changed by the tests around it
    try:
        oid = _order(world, 1, 1)
        with engine().begin() as conn:
            conn.execute(text("UPDATE orders.order_lines SET explanation = jsonb_set(explanation, '{risk}', "
                              "'{\"unit_cost\": 0.12}') WHERE order_id = :o"), {"o": oid})
        c = _client(app, world, "manager2")
        r = _form(c, oid, {I1: "18"}, {I1: "local_event"}, "save")
        assert r.status_code == 303 and r.headers["location"].endswith("done=saved")
        page = c.get(r.headers["location"]).text
        edited, same = _line_html(page, I1), _line_html(page, I2)
        assert re.search(r'proposed <strong data-testid="proposed-qty">12</strong>\s*&rarr; saved '
                         r'<strong data-testid="final-qty">18</strong>\s*<span class="muted small" '
                         r'data-testid="line-value">= 2.16 EUR</span>', edited), edited
        assert "saved order quantity" not in edited  # in sight, not hidden
        assert re.search(r'<option value="local_event" selected>', edited)
        assert "&rarr; saved" not in same and 'data-testid="line-value">= 0.60 EUR' in same
        assert " selected>" not in same.split('data-testid="reason-select"')[1].split("</select>")[0]
        # a later change that fails: the page shows what was typed (reason emptied), not the stored one
        r = c.post(f"/orders/{oid}/lines/{I1}", data={"qty": "24", "reason": "", "version": version_of(c, oid),
                                                     "csrf_token": csrf_of(c)})
        assert r.status_code == 422
        select = _line_html(r.text, I1).split('data-testid="reason-select"')[1].split("</select>")[0]
        assert " selected>" not in select and 'value="24"' in _line_html(r.text, I1)
    finally:
        retire(world)


# ------------------------------------------------------------------------------- the order page's one form
def _form(c: TestClient, oid: str, qtys: dict[int, str], reasons: dict[int, str], action: str) -> Any:
    page = c.get(f"/orders/{oid}").text
    items = re.findall(r'name="item" value="([^"]+)"', page)
    current = dict(re.findall(r'data-item-id="([^"]+)".*?name="qty"[^>]*value="(\d+)"', page, re.S))
    data = {"csrf_token": csrf_of(c), "version": str(version_of(c, oid)), "action": action, "item": items,
            "qty": [qtys.get(int(i), current[i]) for i in items], "reason": [reasons.get(int(i), "") for i in items]}
    return c.post(f"/orders/{oid}", data=data, follow_redirects=False)


def test_order_form_saves_changed_lines_only_and_needs_a_reason(app, world) -> None:
    c = _client(app, world, "manager1")
    oid = _order(world, 0, 0)
    v = version_of(c, oid)
    r = _form(c, oid, {}, {}, "save")  # nothing changed
    assert r.status_code == 303 and r.headers["location"].endswith("done=unchanged") and version_of(c, oid) == v
    r = _form(c, oid, {I2: "9"}, {}, "save")  # changed without a reason: not saved, said at the line
    assert r.status_code == 422 and re.search(rf'data-item-id="{I2}".*?Choose a reason for this change', r.text, re.S)
    assert 'value="9"' in r.text and version_of(c, oid) == v  # what was typed stays in the field
    r = _form(c, oid, {I2: "9", I1: "13"}, {I2: "weather", I1: "weather"}, "save")
    assert r.status_code == 422 and "multiple of the pack size 6" in r.text and version_of(c, oid) == v
    r = _form(c, oid, {I2: "9"}, {I2: "weather"}, "save")
    assert r.status_code == 303 and r.headers["location"].endswith("done=saved")
    assert [e[1] for e in _events(oid)].count(f"line_edited:{I2}") == 1
    assert not any(e[1] == f"line_edited:{I1}" for e in _events(oid))


def test_each_lines_fields_are_named_by_their_item(app) -> None:
    """A screen reader going from field to field hears "Order quantity of <item>", not the same "Order quantity" on
    every line; a reason missing marks the reason field itself, described by the message."""
    world = seeded_world()  # its own open order: the module's are approved and sent by the tests around it
    try:
        c = _client(app, world, "manager1")
        oid = _order(world, 0, 1)
        page = c.get(f"/orders/{oid}").text
        labels = dict(re.findall(r'<label for="((?:qty|reason)-\d+)">(.*?)</label>', page, re.S))
        for n, item in enumerate((I1, I2, I3), start=1):
            for field, words in (("qty", "Order quantity"), ("reason", "Reason for a change")):
                assert re.sub(r"<[^>]+>", "", labels[f"{field}-{n}"]) == f"{words} of Item {item}", labels
        r = _form(c, oid, {I2: "9"}, {}, "save")
        assert r.status_code == 422
        select = re.search(r'<select id="reason-2"[^>]*>', r.text).group(0)
        assert 'aria-invalid="true"' in select and 'aria-describedby="err-2"' in select
    finally:
        retire(world)


def _page_form(c: TestClient, oid: str, page: str | None = None) -> dict[str, Any]:
    """The order form's fields as a browser would send them from ``page`` (default: the order page now)."""
    page = page if page is not None else c.get(f"/orders/{oid}").text
    items = re.findall(r'name="item" value="([^"]+)"', page)
    return {"csrf_token": CSRF_RE.search(page).group(1),
            "version": re.search(r'name="version" value="(\d+)"', page).group(1), "item": items,
            "shown": re.findall(r'name="shown" value="([^"]*)"', page),
            "qty": [re.search(rf'data-item-id="{i}".*?name="qty"[^>]*value="([^"]*)"', page, re.S).group(1)
                    for i in items],
            "reason": [""] * len(items)}


def _typed(form: dict[str, Any], item: int, qty: str, reason: str, action: str = "save") -> dict[str, Any]:
    at = form["item"].index(str(item))
    qtys, reasons = list(form["qty"]), list(form["reason"])
    qtys[at], reasons[at] = qty, reason
    return {**form, "qty": qtys, "reason": reasons, "action": action}


def test_two_people_on_one_order_the_second_is_told_what_changed_and_undoes_nothing(app) -> None:
    """A store manager and a buyer have the order open; the manager saves a change first. The buyer's save of
    another line is refused (409) with the manager's change in words, the buyer's own change still typed, and the
    manager's line showing the manager's quantity: saving again keeps both changes, it does not put the old quantity
    back. Approved in between: the second one is told it was approved, by whom, and that it cannot change."""
    world = seeded_world()
    try:
        oid = _order(world, 0, 0)
        manager, buyer = _client(app, world, "manager1"), _client(app, world, "admin")
        seen_by_buyer = _page_form(buyer, oid)
        r = manager.post(f"/orders/{oid}", data=_typed(_page_form(manager, oid), I1, "24", "promotion"),
                         follow_redirects=False)
        assert r.status_code == 303
        r = buyer.post(f"/orders/{oid}", data=_typed(seen_by_buyer, I2, "9", "weather"), follow_redirects=False)
        assert r.status_code == 409 and 'data-error-code="version_conflict"' in r.text
        told = re.search(r'data-testid="conflict-changes">(.*?)</ul>', r.text, re.S)
        manager_name = world["users"]["manager1"]["username"]
        assert told and f"Quantity of Item {I1} changed from 12 to 24 by {manager_name} (promotion / display)" \
            in told.group(1), r.text
        assert "your changes are still in the fields below" in r.text
        again = _page_form(buyer, oid, r.text)
        assert again["qty"][again["item"].index(str(I1))] == "24"  # the manager's quantity, not the 12 first shown
        assert again["qty"][again["item"].index(str(I2))] == "9"   # the buyer's own change, still typed
        r = buyer.post(f"/orders/{oid}", data={**again, "reason": ["weather" if i == str(I2) else ""
                                                                   for i in again["item"]], "action": "save"},
                       follow_redirects=False)
        assert r.status_code == 303, r.text
        page = buyer.get(f"/orders/{oid}").text
        assert re.search(rf'data-item-id="{I1}".*?final-qty">24<', page, re.S)
        assert re.search(rf'data-item-id="{I2}".*?final-qty">9<', page, re.S)
        # an item being added on a page gone stale: the manager's change named, the typed item kept in its form
        stale = _page_form(buyer, oid)
        r = manager.post(f"/orders/{oid}", data=_typed(_page_form(manager, oid), I1, "30", "promotion"),
                         follow_redirects=False)
        assert r.status_code == 303
        r = buyer.post(f"/orders/{oid}/lines", data={"item_id": str(I9), "qty": "3", "reason": "local_event",
                                                     "version": stale["version"], "csrf_token": stale["csrf_token"]})
        assert r.status_code == 409 and "your changes are still in the fields below" in r.text
        assert re.search(r'id="add-item"[^>]*value="990009"', r.text)
        # approved by the manager while the buyer still had the order open
        stale = _page_form(buyer, oid)
        r = manager.post(f"/orders/{oid}", data={**_page_form(manager, oid), "action": "approve"},
                         follow_redirects=False)
        assert r.status_code == 303
        r = buyer.post(f"/orders/{oid}", data=_typed(stale, I3, "12", "weather"), follow_redirects=False)
        assert r.status_code == 409
        told = re.search(r'data-testid="conflict-changes">(.*?)</ul>', r.text, re.S)
        assert told and f"Status: queued for sending (by {manager_name})" in told.group(1), r.text
        assert "it can no longer be changed" in r.text
    finally:
        retire(world)


def test_order_form_approve_and_send_include_the_change(app, world) -> None:
    c = _client(app, world, "admin")
    oid = _order(world, 0, 0, 2)
    r = _form(c, oid, {I2: "11"}, {I2: "local_event"}, "approve")
    assert r.status_code == 303 and r.headers["location"] == "/queue?done=approved"  # back to the work list
    assert "Order approved and queued for sending." in c.get(r.headers["location"]).text
    page = c.get(f"/orders/{oid}").text
    assert 'data-status="queued"' in page and re.search(rf'data-item-id="{I2}".*?final-qty">11<', page, re.S)
    events = [e[1] for e in _events(oid)]
    assert events.index(f"line_edited:{I2}") < max(i for i, e in enumerate(events) if e == "status")


def test_order_page_confirmations_name_what_is_sent(app, world) -> None:
    c = _client(app, world, "manager1")
    oid = _order(world, 0, 0)
    page = c.get(f"/orders/{oid}").text
    for testid, button in (("approve-confirm", "confirm-approve"), ("send-confirm", "confirm-send")):
        block = page.split(f'data-testid="{testid}"')[1].split("</details>")[0]
        assert f"Supplier {world['suppliers'][0]}" in block and "EUR" in block and f'data-testid="{button}"' in block


def test_queue_sorts_naturally_and_exports_csv(app, world) -> None:
    import csv
    import io

    c = _client(app, world, "admin")
    page = c.get("/queue", params={"sort": "store", "dir": "desc"}).text
    assert 'aria-sort="descending"' in page
    r = c.get("/queue.csv", params={"store_id": world["stores"][0]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows and all(row["store_id"] == str(world["stores"][0]) for row in rows)
    assert {"store", "supplier", "order_value_eur", "why_in_review", "cutoff_local"} <= set(rows[0])
    assert any("quantity far from the usual" in row["why_in_review"] for row in rows)
    r = c.get(f"/orders/{_order(world, 0, 1)}.csv")
    lines = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [ln["item_id"] for ln in lines] == [str(I1), str(I2), str(I3)] and lines[0]["pack_size"] == "6"
    # another store's order: 404 for its CSV too
    m = _client(app, world, "manager2")
    assert m.get(f"/orders/{_order(world, 0, 1)}.csv").status_code == 404


def test_csv_cells_never_start_a_formula() -> None:
    from replenish.platform.web import csv_cell

    assert csv_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert csv_cell("+1") == "'+1" and csv_cell("@SUM(A1)") == "'@SUM(A1)" and csv_cell("Store 2") == "Store 2"
    # a master name with blanks before the formula (a spreadsheet that trims them evaluates it)
    for name in (" -2+3 Landsberg", "  =HYPERLINK(\"http://x\")", "\n@SUM(1)", "\u00a0+1"):
        assert csv_cell(name) == "'" + name, name
    assert csv_cell(" Store 2") == " Store 2" and csv_cell("") == ""


def test_reports_and_data_docs_over_http_behind_sign_in(app, world) -> None:
    settings = app.state.ctx.settings
    report = settings.reports_dir / "forecast_2000-01-01.html"
    docs = settings.state / "data_docs" / "index.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    docs.parent.mkdir(parents=True, exist_ok=True)
    made_docs = not docs.exists()
    report.write_text("<html><body>report 2000</body></html>")
    if made_docs:
        docs.write_text("<html><body>docs</body></html>")
    try:
        anon = TestClient(app)
        r = anon.get("/reports/forecast_2000-01-01.html", follow_redirects=False)
        assert r.status_code == 303 and "next=%2Freports%2Fforecast_2000-01-01.html" in r.headers["location"]
        c = _client(app, world, "buyer1")
        assert "2000-01-01" in c.get("/reports").text
        r = c.get("/reports/forecast_2000-01-01.html")
        assert r.status_code == 200 and "report 2000" in r.text
        assert r.headers["content-security-policy"].startswith("sandbox")  # its scripts get no access to ours
        assert c.get("/data-docs/index.html").status_code == 200
        # the index is the platform's own (GX's needs CDN scripts): every validation page on disk, newest first
        page = (settings.state / "data_docs" / "validations" / "quality_<b>x" / "run" / "20190501T001500.123Z"
                / "batch-1.html")
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text("<html><body>validation page</body></html>")
        try:
            index = c.get("/data-docs/")
            assert index.status_code == 200 and "2019-05-01 00:15 UTC" in index.text
            assert "quality_&lt;b&gt;x" in index.text and "<b>x" not in index.text
            assert 'href="/data-docs/validations/quality_%3Cb%3Ex/run/20190501T001500.123Z/batch-1.html"' \
                in index.text
            assert "validation page" in c.get(
                "/data-docs/validations/quality_%3Cb%3Ex/run/20190501T001500.123Z/batch-1.html").text
        finally:
            import shutil

            shutil.rmtree(settings.state / "data_docs" / "validations" / "quality_<b>x")
        # they cover every store: a store manager is refused them and not offered the link
        m = _client(app, world, "manager1")
        for path in ("/reports", "/reports/forecast_2000-01-01.html", "/data-docs/", "/data-docs/index.html"):
            r = m.get(path)
            assert r.status_code == 403 and "for buyers and the data team" in r.text, path
            assert "report 2000" not in r.text
        assert 'data-testid="reports-link"' not in m.get("/queue").text
        assert 'data-testid="reports-link"' in c.get("/queue").text
        for bad in ("/reports/..%2F..%2Fpyproject.toml", "/data-docs/../../pyproject.toml",
                    "/data-docs/..%2F..%2Fpgdata%2Fpg_hba.conf", "/reports/forecast_x.html"):
            assert c.get(bad).status_code == 404, bad
    finally:
        report.unlink()
        if made_docs:
            docs.unlink()


def test_run_links_open_on_the_platform() -> None:
    import datetime as dt

    from replenish.monitoring.figures import run_links
    from replenish.settings import Settings

    s = Settings(platform_base_url="http://replenish.example:8000/")
    links = run_links(s, dt.date(2019, 4, 30))
    assert links == {"review_queue": "http://replenish.example:8000/queue",
                     "data_docs": "http://replenish.example:8000/data-docs/index.html",
                     "forecast_report": "http://replenish.example:8000/reports/forecast_2019-04-30.html"}
    assert "forecast_report" not in run_links(s, dt.date(2019, 4, 30), "forecast_training")  # it writes none


# ------------------------------------------------------------------------------------------ stock-outs page
def test_stock_outs_page_shows_the_items_of_ones_orders_and_why_they_sold_out(app, world) -> None:
    """``/service``: the last night's accuracy verdict (as the forecast stage recorded it) for the items of the
    orders a person may see: the share of days sold out against the share asked, and where their stock came from."""
    import datetime as dt

    from support.platform_app import night_verdict, service_item

    from replenish import clock
    from replenish.database import begin

    day = clock.today() - dt.timedelta(days=1)
    other = 990_777    # an item of no order of this world
    order = _order(world)      # the first store's order from the first supplier: buyer1's, not buyer2's
    with begin() as c:
        c.execute(text("INSERT INTO orders.order_lines (order_id, item_id, proposed_qty, final_qty) "
                       "VALUES (:o, :i, 3, 3)"), {"o": order, "i": I9})
    try:
        with night_verdict(day, [service_item(I1, 0.5), service_item(I9, 0.47), service_item(other, 0.46)]):
            assert TestClient(app).get("/service", follow_redirects=False).status_code == 303   # sign in first
            assert 'href="/service"' in _client(app, world, "buyer1").get("/queue").text

            def items(who: str) -> list[str]:
                page = _client(app, world, who).get("/service")
                assert page.status_code == 200 and f"up to\n    {day}" in page.text
                return re.findall(r'data-testid="service-item" data-item="(\d+)"', page.text)

            assert items("buyer1") == [str(I1), str(I9)]          # the widest gap first
            assert items("buyer2") == [str(I1)]
            assert items("admin") == [str(I1), str(I9), str(other)]
            page = _client(app, world, "buyer1").get("/service").text
            assert "service-drift" not in page        # an item's drift is its card, not a second list
            assert "ordered outside Replenish</td><td class=\"num\">90 / 150</td>" in page
            assert "20 points over" in page and f"/reports/forecast_{day}.html" in page
        # a store manager sees their own store's days (the night's rows by store), the chain's beside them
        import pandas as pd

        from replenish.database import engine
        from replenish.forecasting import stockout_causes

        mine, theirs = world["stores"][0], world["stores"][1]
        rows = pd.DataFrame([(mine, I1, "ordered_outside", 20, 10, 0.3), (mine, I1, "as_proposed", 8, 1, 0.3),
                             (theirs, I1, "as_proposed", 50, 40, 0.3)], columns=list(stockout_causes.CAUSE_ROW_COLUMNS))
        stockout_causes.record(engine(), day, rows)
        with night_verdict(day, [service_item(I1, 0.5)]):
            page = _client(app, world, "manager1").get("/service").text
            assert "/reports/" not in page     # the chain's report is not the manager's
            assert re.findall(r'data-testid="service-item" data-item="(\d+)"', page) == [str(I1)]
            assert '<strong data-testid="service-share">39&nbsp;%</strong> of 28 days' in page   # 11 of 28
            # 9 points over the 30 % asked, where 28 days move the share by 17 points by chance: no badge
            assert "(9 points over on 28 days: too few to tell from chance)" in page and "badge" not in page
            assert "ordered outside Replenish</td><td class=\"num\">10 / 20</td>" in page
            assert re.search(r'data-testid="service-chain">Every store: 50&nbsp;% of\s+200 days', page)
            assert 'data-testid="service-where"' in page
            assert "service-chain" not in _client(app, world, "buyer1").get("/service").text
        # the model's own drift heads the page
        narrow = {"rows": 1000, "censored_rows": 100, "bias": 0.0, "coverage_low": 0.5, "coverage_high": 0.6,
                  "wape_backtested_rows": 0.2, "backtest_wape": 0.2}
        with night_verdict(day, [service_item(I1, 0.3)], narrow):
            page = _client(app, world, "buyer1").get("/service").text
            assert "P10-P90 holds at most 60% of what sold" in page and 'data-testid="service-drift"' in page
    finally:
        with begin() as c:
            c.execute(text("DELETE FROM orders.order_lines WHERE order_id = :o AND item_id = :i"),
                      {"o": order, "i": I9})
            c.execute(text("DELETE FROM forecast.stockout_causes WHERE business_date = :d"), {"d": day})

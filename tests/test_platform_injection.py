"""Injection corpus through every rendered field and query parameter, without a browser (fast).

Hostile strings are stored as store, supplier and item names, order ids, user names, display names, reasons,
edit reasons, explanations, audit entries and an outbox error (support.injection.seed_hostile), and passed
as every query parameter and form field the pages echo. Store, supplier and item ids are integers: hostile text
typed as one (query parameter, path segment, form field, API body) is refused with its field's error, never a
server error. Each page must show them as text: no payload
occurs unescaped and the parsed HTML holds no element, event handler or htmx attribute a payload brought.
The same corpus runs in real Chromium in test_platform_injection_browser.py.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from support.injection import (
    CORPUS,
    DOTS,
    DOTS_ITEM,
    HOSTILE_ITEM,
    ITEM_NAME,
    LOGOUT,
    ORDER_ID,
    SHORT20,
    STORE_NAME,
    fits,
    fresh_database,
    injected,
    query_cases,
    raw_payloads,
    seed_hostile,
)
from support.platform_app import CSRF_RE, VERSION_RE


@pytest.fixture(scope="module")
def hostile() -> Any:
    eng = fresh_database()
    world = seed_hostile(eng)
    yield eng, world
    eng.dispose()


@pytest.fixture(scope="module")
def app(hostile):
    from replenish.platform.app import create_app
    from replenish.platform.ratelimit import TokenBucket

    eng, _ = hostile
    return create_app(engine=eng, dispatch=lambda: {}, login_limiter=TokenBucket(1000, 1000),
                      api_limiter=TokenBucket(1000, 1000))


@pytest.fixture(scope="module")
def admin(app, hostile) -> TestClient:
    _, world = hostile
    c = TestClient(app)
    token = CSRF_RE.search(c.get("/login").text).group(1)
    u = world["hostile_user"]
    r = c.post("/login", data={"username": u["username"], "password": u["password"], "csrf_token": token},
               follow_redirects=False)
    assert r.status_code == 303
    return c


def _clean(page: str, what: str) -> None:
    assert not raw_payloads(page), f"{what}: unescaped payloads {raw_payloads(page)}"
    assert not injected(page), f"{what}: {injected(page)}"


def _order_url(order_id: str) -> str:
    return "/orders/" + quote(order_id, safe="")


def test_templates_autoescape_every_name() -> None:
    """The cause of the finding: select_autoescape() did not match *.html.j2. Now every name escapes."""
    from replenish.platform.app import make_templates

    env = make_templates().env
    for name in (*env.list_templates(), "anything.j2", "x.txt"):
        assert env.autoescape is True or env.autoescape(name), name  # type: ignore[operator]
    assert env.from_string("{{ v }}").render(v=LOGOUT) == LOGOUT.replace("<", "&lt;").replace(">", "&gt;").replace(
        '"', "&#34;")


def test_chart_escapes_its_label() -> None:
    import datetime as dt

    from replenish.platform.charts import sales_svg

    svg = sales_svg([(dt.date(2024, 1, 1), 3.0), (dt.date(2024, 1, 2), 4.0)], [], label=ITEM_NAME)
    assert ITEM_NAME not in svg and not injected(str(svg).replace("<svg class", "<x class"))
    assert "&lt;svg id=&#34;inj-item&#34;" in svg


def test_stored_names_ids_reasons_and_users_render_as_text(admin, hostile) -> None:
    _, world = hostile
    queue = admin.get("/queue")
    assert queue.status_code == 200
    _clean(queue.text, "queue")
    # they are on the page, as text
    assert "&lt;b id=&#34;inj-logout&#34; hx-post=&#34;/logout&#34;" in queue.text  # the supplier's name
    assert "&#34;&gt;&lt;b id=&#34;inj-store&#34;&gt;&lt;script" in queue.text  # the hostile order's store name
    assert f'data-store-id="{world["hostile_store"]}"' in queue.text and STORE_NAME not in queue.text
    assert 'data-testid="user-name" hx-disable>&lt;iframe' in queue.text  # the display name
    for status in ("all", "in_review"):
        _clean(admin.get("/queue", params={"status": status}).text, f"queue {status}")
    for oid in [*world["orders"].values(), ORDER_ID]:
        r = admin.get(_order_url(oid))
        assert r.status_code == 200, oid
        _clean(r.text, f"order {oid}")
    page = admin.get(_order_url(ORDER_ID)).text
    assert "{{ 7*7 }}${7*7}" in page  # shown, never evaluated (no template injection)
    from markupsafe import escape

    # the chart's label is the (hostile) item name, escaped; so are the reasons and events naming the item
    assert re.search(r'aria-label="Daily sales from [^"]* for ' + re.escape(str(escape(ITEM_NAME))), page)
    assert f"quantity far from the usual ({escape(ITEM_NAME)})" in page
    assert f"(item {escape(ITEM_NAME)})" in page  # a reason whose detail is hostile text, not an item id
    assert f"#{HOSTILE_ITEM}<" in page and f"{escape(DOTS)}{escape(CORPUS[9])}" in page
    assert page.count('data-testid="audit-row"') >= 5


@pytest.mark.parametrize(("path", "params"), query_cases(), ids=lambda v: str(v)[:40])
def test_query_parameters_are_never_markup(admin, path: str, params: dict[str, str]) -> None:
    r = admin.get(path, params=params)
    assert r.status_code in (200, 422), r.status_code
    _clean(r.text, f"{path} {params}")


def test_reflected_form_fields(admin, hostile) -> None:
    """Fields a failed change re-renders (add-line item id, quantity), the sign-in name, bulk selections."""
    url = _order_url(ORDER_ID)
    page = admin.get(url).text
    token = CSRF_RE.search(page).group(1)
    version = VERSION_RE.search(page).group(1)
    for p in fits(64):
        r = admin.post(url + "/lines", data={"item_id": p, "qty": p[:20], "reason": p, "version": version,
                                             "csrf_token": token})
        assert r.status_code == 422, (p, r.status_code)
        _clean(r.text, f"add line {p}")
        r = admin.post(url + "/lines/" + quote(p, safe=""), data={"qty": p[:20], "reason": p, "version": version,
                                                                   "csrf_token": token})
        assert r.status_code in (404, 422), (p, r.status_code)
        _clean(r.text, f"edit line {p}")
        r = admin.post(url + "/reject", data={"reason": p, "version": version, "csrf_token": token})
        assert r.status_code == 422
        _clean(r.text, f"reject {p}")
        r = admin.post("/queue/approve", data={"order": [p, f"{p}@1", f"{ORDER_ID}@{p}"], "csrf_token": token})
        _clean(r.text, f"bulk approve {p}")
    r = admin.post(url + "/lines", data={"item_id": p, "qty": "x", "reason": "weather", "version": p[:20],
                                         "csrf_token": token})
    _clean(r.text, "version")
    anon = TestClient(admin.app)
    token = CSRF_RE.search(anon.get("/login").text).group(1)
    for p in CORPUS:
        r = anon.post("/login", data={"username": p, "password": p, "csrf_token": token, "next": p})
        assert r.status_code in (401, 429)
        _clean(r.text, f"sign-in {p}")
    assert re.search(r'value="&lt;b id=&#34;inj-logout', anon.post(
        "/login", data={"username": LOGOUT, "password": "x", "csrf_token": token}).text)


def test_item_ids_stay_inside_their_url_segment(admin, hostile) -> None:
    """Item ids are numbers: the lines are values of the order's one form, never part of an action, and a
    typed path segment like '../../logout' posts to the line route (404), never to /logout."""
    _, world = hostile
    url = _order_url(ORDER_ID)
    page = admin.get(url).text
    # the lines are fields of the order's one form (their ids are values, never part of an action), and every form
    # posts to this order's own routes or to sign-out
    assert "/lines/../" not in page
    assert f'name="item" value="{HOSTILE_ITEM}"' in page and f'name="item" value="{DOTS_ITEM}"' in page
    own = url
    assert set(re.findall(r'<form[^>]*action="([^"]+)"', page)) <= {"/logout", own, own + "/lines", own + "/reject"}
    token, version = CSRF_RE.search(page).group(1), VERSION_RE.search(page).group(1)
    r = admin.post(url + "/lines/..%2F..%2Flogout", data={"qty": "1", "reason": "weather", "version": version,
                                                        "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 404
    assert admin.get("/queue").status_code == 200  # still signed in


def test_typed_ids_that_are_not_numbers_are_refused_by_their_field(admin, hostile) -> None:
    """What a person or a till types as a store, supplier or item id: a field error (422) or 404, never a 500,
    and what was typed is echoed as text only."""
    _, world = hostile
    s1, p1 = world["stores"][0], world["suppliers"][0]
    oid = world["orders"][f"{s1}/{p1}/1"]
    page = admin.get(_order_url(oid)).text
    token, version = CSRF_RE.search(page).group(1), VERSION_RE.search(page).group(1)
    for bad in (*fits(64), SHORT20, "../approve", "a/b", "x y", ".hidden", "-1", "1e3", "99999999999", "0x10"):
        for name in ("store_id", "supplier_id"):
            r = admin.get("/queue", params={name: bad})
            assert r.status_code == 422 and f"expected a {name[:-3]} number" in r.text, (name, bad, r.status_code)
            _clean(r.text, f"queue {name} {bad}")
        r = admin.post(_order_url(oid) + "/lines", data={"item_id": bad, "qty": "3", "reason": "local_event",
                                                         "version": version, "csrf_token": token})
        assert r.status_code == 422 and "item id is required: the item&#39;s number" in r.text, bad
        _clean(r.text, f"add line {bad}")
        r = admin.post(_order_url(oid) + "/lines/" + quote(bad, safe=""),
                       data={"qty": "12", "reason": "weather", "version": version, "csrf_token": token})
        assert r.status_code in (404, 422), (bad, r.status_code)
        if r.status_code == 422:
            assert "item id is required: the item&#39;s number" in r.text, bad
        _clean(r.text, f"edit line {bad}")
        r = admin.post(_order_url(oid), data={"item": bad, "qty": "3", "reason": "weather", "action": "save",
                                              "version": version, "csrf_token": token})
        assert r.status_code == 422 and "item id is required: the item&#39;s number" in r.text, bad
        _clean(r.text, f"order form {bad}")
    assert VERSION_RE.search(admin.get(_order_url(oid)).text).group(1) == version  # nothing was saved
    # a number is an item id; an item's exact name (any case) is found too, hostile as it is
    r = admin.post(_order_url(oid) + "/lines", data={"item_id": "990009", "qty": "3", "reason": "local_event",
                                                     "version": version, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    r = admin.post(_order_url(oid) + "/lines", data={"item_id": ITEM_NAME.upper(), "qty": "3",
                                                     "reason": "local_event", "version": str(int(version) + 1),
                                                     "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    page = admin.get(_order_url(oid)).text
    assert f'data-item-id="{HOSTILE_ITEM}"' in page and 'data-item-id="990009"' in page
    _clean(page, "order with an item added by its hostile name")


def test_the_api_refuses_ids_that_are_not_numbers(app, hostile) -> None:
    _, world = hostile
    s1, p1 = world["stores"][0], world["suppliers"][0]
    oid = world["orders"][f"{s1}/{p1}/2"]
    c = TestClient(app, headers={"Authorization": f"Bearer {world['api_keys'][s1]}"})
    v = c.get(f"/api/v1/orders/{quote(oid, safe='')}").json()["version"]
    for bad in (*CORPUS, ORDER_ID, "-1", "1e3"):
        r = c.patch(f"/api/v1/orders/{quote(oid, safe='')}/lines",
                    json={"version": v, "lines": [{"item_id": bad, "qty": 12, "reason": "weather"}]})
        assert r.status_code == 422 and [f["field"] for f in r.json()["error"]["fields"]] == ["/lines/0/item_id"]
        r = c.post("/api/v1/receipts", json={"receipt_id": "inj-1", "store_id": bad, "sold_at": "2026-01-01T10:00Z",
                                             "lines": [{"item_id": bad, "qty": 1, "unit_price": 1}]})
        assert r.status_code == 422
        fields = {f["field"] for f in r.json()["error"]["fields"]}
        assert {"/store_id", "/lines/0/item_id"} <= fields, (bad, fields)
    assert c.get(f"/api/v1/orders/{quote(oid, safe='')}").json()["version"] == v


def test_error_pages_escape_what_they_echo(admin) -> None:
    for p in CORPUS:
        r = admin.get("/orders/" + quote(p, safe=""))
        assert r.status_code == 404
        _clean(r.text, f"404 {p}")
        r = admin.get("/" + quote(p, safe=""))
        assert r.status_code == 404
        _clean(r.text, f"unknown path {p}")
    r = admin.get("/queue", params={"status": "x" * 30, "store_id": LOGOUT})
    assert r.status_code == 422
    _clean(r.text, "validation error")


def test_pages_send_a_strict_content_security_policy(admin) -> None:
    for path in ("/queue", _order_url(ORDER_ID), "/login", "/orders/nope", "/openapi.json"):
        r = admin.get(path)
        csp = {d.split(" ", 1)[0]: d for d in (x.strip() for x in r.headers["content-security-policy"].split(";"))}
        assert csp["default-src"] == "default-src 'none'"
        assert csp["script-src"] == "script-src 'self'"  # no inline scripts, no eval, no other origin
        assert csp["style-src"] == "style-src 'self'"
        for d in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'"):
            assert d in csp.values(), (path, d)
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
    docs = admin.get("/docs")
    script_src = [d for d in docs.headers["content-security-policy"].split(";") if "script-src" in d][0]
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src and "'sha256-" in script_src
    assert "validator.swagger.io" not in docs.text
    static = admin.get("/static/app.js")
    assert "no-store" not in static.headers.get("cache-control", "")


def test_htmx_is_configured_to_follow_only_the_pages_own_links(admin) -> None:
    import json

    page = admin.get("/queue").text
    config = json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", page).group(1))
    assert config["allowEval"] is False and config["allowScriptTags"] is False
    assert config["selfRequestsOnly"] is True and config["historyCacheSize"] == 0
    assert re.search(r'<body hx-boost="true" hx-headers=\'\{"X-CSRF-Token": "[A-Za-z0-9_-]+"\}\'', page)
    app_js = admin.get("/static/app.js").text
    assert "htmx:beforeRequest" in app_js and "boosted" in app_js


def test_the_scanner_finds_what_it_looks_for() -> None:
    """The checks above are only as good as this: unescaped payloads are caught."""
    for p in (*CORPUS[:9], CORPUS[11], CORPUS[12], CORPUS[13], CORPUS[14]):
        page = f"<html><body hx-boost=\"true\"><h3 hx-disable>{p}</h3></body></html>"
        assert injected(page) and raw_payloads(page), p
    assert not injected(f"<p>{SHORT20.replace('<', '&lt;')}</p>")

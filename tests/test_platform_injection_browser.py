"""The injection corpus in real Chromium (Debian's, driven by Playwright; see support/browser.py).

The hostile world of support.injection (names, ids, user names, reasons, edit reasons, explanations, audit
entries, outbox error, all hostile) is served by the real app on loopback. Signed in as an admin whose
username and display name are hostile, the browser opens every page, every query parameter with every
payload that fits, and a failed add-line form that echoes what was typed. On every page: no element or
attribute a payload brought exists in the DOM, no dialog opens, no Content-Security-Policy violation is
reported (our pages keep to the policy), and the browser issues no request but the expected ones (the
pages opened, their static files, the form posted): no POST /logout, nothing to the payloads' URLs.

A second test puts raw payloads into a page on the wire (as if escaping had failed) to show the layers
behind escaping hold: hx-disable around data, app.js refusing htmx requests that are not boosted links or
forms, htmx without eval, and the CSP blocking inline scripts and handlers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
from support.browser import CHROMIUM, LAPTOP, app_in_thread, chromium_context
from support.injection import LOGOUT, ORDER_ID, fresh_database, query_cases, seed_hostile

pytestmark = [
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} missing: run `make chromium`"),
    pytest.mark.slow,
]

STATIC = {"/static/app.css", "/static/app.js", "/static/htmx.min.js"}

# Everything in the DOM a payload could have brought: elements with an inj* id, event handler attributes,
# htmx attributes beyond the body's hx-boost/hx-headers and the hx-disable markers, inline scripts, frames.
DOM_CHECK = """() => {
  const found = [];
  for (const el of document.querySelectorAll('*')) {
    if ((el.id || '').startsWith('inj')) found.push('element #' + el.id);
    for (const a of el.attributes) {
      const n = a.name.toLowerCase();
      if (n.startsWith('on')) found.push(n + ' on <' + el.tagName + '>');
      const hx = n.startsWith('hx-') || n.startsWith('data-hx-');
      if (hx && !['hx-boost', 'hx-headers', 'hx-disable'].includes(n)) found.push(n + ' on <' + el.tagName + '>');
      if ((n === 'hx-boost' || n === 'hx-headers') && el !== document.body) found.push(n + ' off <body>');
      if ((n === 'href' || n === 'action' || n === 'src') && /^\\s*javascript:/i.test(a.value)) found.push('js url');
    }
    if (el.tagName === 'SCRIPT' && !el.src) found.push('inline script');
    if (['IFRAME', 'OBJECT', 'EMBED', 'BASE', 'STYLE'].includes(el.tagName)) found.push(el.tagName);
    if (el.tagName === 'META' && el.httpEquiv) found.push('meta http-equiv');
  }
  return found;
}"""


@pytest.fixture(scope="module")
def playwright() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[Any, dict[str, Any]]]:
    eng = fresh_database()
    world = seed_hostile(eng)
    yield eng, world
    eng.dispose()


@pytest.fixture(scope="module")
def base_url(hostile) -> Iterator[str]:
    from replenish.platform.app import create_app
    from replenish.platform.ratelimit import TokenBucket

    eng, _ = hostile
    app = create_app(engine=eng, dispatch=lambda: {}, login_limiter=TokenBucket(1000, 1000),
                     api_limiter=TokenBucket(1000, 1000))
    with app_in_thread(app) as url:
        yield url


class Watch:
    """Requests, dialogs, console CSP reports and page errors of one browser context."""

    def __init__(self, ctx: Any, page: Any) -> None:
        self.requests: list[tuple[str, str]] = []
        self.dialogs: list[str] = []
        self.csp: list[str] = []
        self.errors: list[str] = []
        ctx.on("request", lambda r: self.requests.append((r.method, r.url)))
        page.on("dialog", self._dialog)
        page.on("console", lambda m: self.csp.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _dialog(self, d: Any) -> None:
        self.dialogs.append(d.message)
        d.dismiss()


def _sign_in(page: Any, base_url: str, user: dict[str, str]) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("Username").fill(user["username"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_test_id("login-submit").click()
    page.wait_for_url("**/queue")


def test_hostile_data_and_parameters_stay_text_in_chromium(playwright, hostile, base_url) -> None:
    from playwright.sync_api import expect

    _, world = hostile
    expected: set[tuple[str, str]] = {("GET", p) for p in STATIC} | {("GET", "/login"), ("POST", "/login"),
                                                                       ("GET", "/queue")}
    with chromium_context(playwright, LAPTOP) as ctx:
        page = ctx.new_page()
        watch = Watch(ctx, page)
        _sign_in(page, base_url, world["hostile_user"])
        expect(page.get_by_test_id("user-name")).to_contain_text("<iframe id=")  # the display name, as text

        def visit(path: str, params: dict[str, str] | None = None) -> None:
            url = base_url + path + ("?" + urlencode(params) if params else "")
            resp = page.goto(url)
            assert resp is not None and resp.status in (200, 404, 422), (url, resp and resp.status)
            expected.add(("GET", urlsplit(resp.url).path))
            found = page.evaluate(DOM_CHECK)
            assert not found, f"{path} {params}: {found}"

        order_paths = ["/orders/" + quote(o, safe="") for o in [*world["orders"].values(), ORDER_ID]]
        for path in ["/queue", *order_paths]:
            visit(path)
            page.wait_for_load_state("networkidle")  # give a payload's load trigger every chance to fire
        visit("/queue", {"status": "all"})
        for path, params in query_cases():
            visit(path, params)

        # the add-line form echoes what was typed when the change fails
        visit(order_paths[-1])
        page.get_by_text("Add an item").click()  # the form folds away until asked for
        page.get_by_test_id("add-item").fill(LOGOUT)
        page.get_by_test_id("add-qty").fill("3")  # no reason chosen: refused, the form comes back filled in
        page.get_by_test_id("add-line").click()
        expect(page.get_by_test_id("error")).to_be_visible()
        expect(page.get_by_test_id("add-item")).to_have_value(LOGOUT)
        expected.add(("POST", urlsplit(page.url).path + "/lines"))
        expected.add(("POST", "/orders/" + ORDER_ID + "/lines"))
        assert not page.evaluate(DOM_CHECK)
        page.wait_for_load_state("networkidle")

        # still signed in: nothing posted /logout behind our back
        visit("/queue")
        expect(page.get_by_test_id("user-name")).to_be_visible()

    assert not watch.dialogs, watch.dialogs
    assert not watch.csp, watch.csp[:3]  # our own pages keep to the policy
    assert not watch.errors, watch.errors[:3]
    unexpected = []
    for method, url in watch.requests:
        parts = urlsplit(url)
        if parts.scheme == "data":
            continue
        path = parts.path
        if (method, path) in expected or (method, _unquoted(path)) in expected:
            continue
        unexpected.append((method, url))
    assert not unexpected, unexpected[:5]
    assert not [r for r in watch.requests if urlsplit(r[1]).path == "/logout"]


def _unquoted(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)


def test_layers_behind_escaping_hold_when_markup_gets_in(playwright, hostile, base_url) -> None:
    """As if a template had missed an escape: raw payloads on the wire, inside a data element (hx-disable)
    and outside any. htmx requests they ask for are refused, their scripts and handlers blocked by the CSP."""
    _, world = hostile
    inside = '<b id="inj-inside" hx-post="/logout" hx-trigger="load">in</b>'
    outside = (
        '<b id="inj-outside" hx-post="/logout" hx-trigger="load">out</b>'
        '<div id="inj-get" hx-get="/queue?inj=1" hx-trigger="load"></div>'
        '<div id="inj-on" hx-on::load="alert(5)" hx-get="/queue?inj=2" hx-trigger="load"></div>'
        '<img id="inj-img" src="data:," onerror="alert(1)" onload="alert(2)">'
        "<script>alert(3)</script>"
    )

    def tamper(route: Any) -> None:
        resp = route.fetch()
        body = resp.text()
        body = body.replace("<main>", "<main>" + outside, 1).replace(
            'data-testid="supplier-name">', 'data-testid="supplier-name">' + inside, 1)  # a cell of a hx-disable row
        route.fulfill(response=resp, body=body)

    with chromium_context(playwright, LAPTOP) as ctx:
        page = ctx.new_page()
        watch = Watch(ctx, page)
        _sign_in(page, base_url, world["hostile_user"])
        page.route("**/queue?status=all", tamper)
        page.goto(base_url + "/queue?status=all")
        page.wait_for_load_state("networkidle")
        found = page.evaluate(DOM_CHECK)
        assert "element #inj-inside" in found and "element #inj-outside" in found  # they did get in
        page.goto(base_url + "/queue")
        assert page.get_by_test_id("user-name").is_visible()  # still signed in

    assert not [r for r in watch.requests if urlsplit(r[1]).path == "/logout" or "inj=" in r[1]], watch.requests
    assert not watch.dialogs, watch.dialogs
    assert any("script-src" in m for m in watch.csp), watch.csp  # the CSP refused the inline script/handlers


def test_api_docs_work_under_their_csp(playwright, base_url) -> None:
    from playwright.sync_api import expect

    with chromium_context(playwright, LAPTOP) as ctx:
        page = ctx.new_page()
        watch = Watch(ctx, page)
        page.goto(base_url + "/docs")
        expect(page.locator(".opblock").first).to_be_visible()
    assert not watch.csp, watch.csp[:3]
    assert all(urlsplit(u).netloc in ("", urlsplit(base_url).netloc) for _, u in watch.requests), watch.requests

"""The ordering platform in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser).

The app runs in-process under uvicorn on a loopback port against the test database; its "send now"
runs the real dispatcher with the real channels writing to a temporary directory (EDIFACT files for the
seeded orders, .eml files for email orders). Screenshots go to REPLENISH_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import http.server
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import (
    CHROMIUM,
    LAPTOP,
    PHONE,
    Clicks,
    app_in_thread,
    axe_violations,
    chromium_context,
    device,
    horizontal_overflow,
    small_tap_targets,
    wider_than_the_window,
)

from replenish.platform.demo import I1, I2

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} missing: run `make chromium`")


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b"<!doctype html><title>t</title><h1 data-testid='hello'>Hello replenish</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_system_chromium_launches(playwright) -> None:
    """The launch itself (system executable, flags, fresh profile) works against a trivial loopback page."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with chromium_context(playwright, PHONE) as ctx:
            page = ctx.new_page()
            page.goto(f"http://127.0.0.1:{srv.server_address[1]}/")
            assert page.get_by_test_id("hello").inner_text() == "Hello replenish"
    finally:
        srv.shutdown()


# ------------------------------------------------------------------------------------------- the platform
@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sent")


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    """Two stores x two suppliers of open orders in review, users of every role (platform.demo.seed_demo)."""
    from replenish import migrations
    from replenish.database import engine
    from replenish.platform.demo import seed_demo

    with engine().begin() as conn:
        migrations.upgrade(conn)
        return seed_demo(conn)


UNIT_COST = 1.35


def _price_lines(order_id: str) -> None:
    """The seeded world's items have no masters: give this order's lines the purchase price a proposal records."""
    from sqlalchemy import text

    from replenish.database import engine

    with engine().begin() as conn:
        conn.execute(text("UPDATE orders.order_lines SET explanation = jsonb_set(explanation, '{risk}', "
                          "jsonb_build_object('unit_cost', CAST(:c AS numeric))) WHERE order_id = :o"),
                     {"c": UNIT_COST, "o": order_id})


@pytest.fixture(scope="module")
def dispatch(out_dir: Path) -> Any:
    """What "send now" runs: the real dispatcher, the real channels writing into out_dir."""
    from replenish import clock
    from replenish.database import engine
    from replenish.orders.channels import EdifactChannel, EmailChannel
    from replenish.orders.dispatcher import drain
    from replenish.settings import get_settings

    settings = get_settings()
    channels = {
        "edifact": EdifactChannel(out_dir / "edi"),
        "email": EmailChannel(api_key=None, base_url="http://127.0.0.1:9", mail_from=settings.mail_from,
                              outbox_dir=out_dir / "eml"),
    }
    return lambda order_ids=None: drain(engine(), channels, business_today=clock.today(), run_id="browser-test",
                                        order_ids=order_ids)


@pytest.fixture(scope="module")
def base_url(world: dict[str, Any], dispatch: Any) -> Iterator[str]:
    from replenish.database import engine
    from replenish.platform.app import create_app

    with app_in_thread(create_app(engine=engine(), dispatch=dispatch)) as url:
        yield url


def _shot(page: Any, name: str, tmp_path: Path) -> None:
    target = Path(os.environ.get("REPLENISH_SCREENSHOT_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"{name}.png"))  # what the user sees
    page.screenshot(path=str(target / f"{name}-full.png"), full_page=True)


def _sign_in(page: Any, base_url: str, user: dict[str, str]) -> None:
    page.goto(base_url + "/queue")
    assert "/login" in page.url  # not signed in: sent to the sign-in form, which returns to the queue
    page.get_by_label("Username").fill(user["username"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_test_id("login-submit").click()
    page.wait_for_url("**/queue")
    assert page.get_by_test_id("user-name").inner_text().startswith(user.get("display", user["username"]))


def _check_layout(page: Any, what: str, *, phone: bool) -> None:
    """What every page must pass: no horizontal scroll, no serious accessibility violation, and on a phone every
    control at least 44 x 44 px."""
    assert horizontal_overflow(page) <= 0, f"{what}: {horizontal_overflow(page)} px wider than the viewport"
    assert not axe_violations(page), f"{what}: {axe_violations(page)}"
    if phone:
        assert not small_tap_targets(page), f"{what}: {small_tap_targets(page)}"


@pytest.mark.slow
def test_buyer_clears_the_review_queue_on_a_laptop(playwright, world, base_url, dispatch, out_dir, tmp_path):
    """Open each order in review, decide it (approve one, reject one with a reason), approve the rest at once: the
    whole queue in at most 12 clicks, every approval confirmed with what it sends."""
    from playwright.sync_api import expect

    supplier = world["suppliers"][0]  # buyer1: the first supplier, three orders in review
    mine = [world["orders"][k] for k in (f"{world['stores'][0]}/{supplier}/1", f"{world['stores'][1]}/{supplier}/1",
                                         f"{world['stores'][0]}/{supplier}/2")]
    with chromium_context(playwright, LAPTOP) as ctx:
        page = ctx.new_page()
        _sign_in(page, base_url, world["users"]["buyer1"])
        rows = page.get_by_test_id("queue-order")
        expect(rows).to_have_count(3)
        expect(page.get_by_test_id("filters-box")).to_have_attribute("open", "")  # filters open on a laptop
        _check_layout(page, "laptop queue", phone=False)
        _shot(page, "laptop-queue", tmp_path)
        clicks = Clicks(touch=False)

        # 1. the first order: open it, approve it (confirmation names supplier, lines and value)
        clicks.press(page.locator(f'[data-order-id="{mine[0]}"] [data-testid=open-order]'), "open order 1")
        page.wait_for_url(f"**/orders/{mine[0]}")
        _check_layout(page, "laptop order", phone=False)
        _shot(page, "laptop-order", tmp_path)
        clicks.press(page.get_by_test_id("approve"), "Approve...")
        expect(page.get_by_test_id("confirm-approve")).to_be_visible()
        expect(page.get_by_test_id("approve-confirm")).to_contain_text("lines")
        _shot(page, "laptop-order-confirm", tmp_path)
        clicks.press(page.get_by_test_id("confirm-approve"), "Yes, approve")
        page.wait_for_url("**/queue?done=approved")
        expect(page.get_by_test_id("notice")).to_have_text("Order approved and queued for sending.")

        # 2. the second: open it, reject it with a reason in words
        clicks.press(page.locator(f'[data-order-id="{mine[1]}"] [data-testid=open-order]'), "open order 2")
        page.wait_for_url(f"**/orders/{mine[1]}")
        clicks.press(page.get_by_text("Reject this order"), "Reject this order")
        clicks.choose(page.get_by_test_id("reject-reason"), "store_closed", "reason: store closed")
        clicks.press(page.get_by_test_id("reject"), "Reject")
        page.wait_for_url("**/queue?done=rejected")

        # 3. the rest at once: select all, approve, confirm (the confirmation lists store and supplier)
        expect(page.get_by_test_id("bulk-select")).to_have_count(1)
        clicks.press(page.get_by_test_id("select-all"), "select all")
        expect(page.get_by_test_id("selected-count")).to_have_text("1 of 1 selected")
        clicks.press(page.get_by_test_id("bulk-approve"), "Approve selected...")
        expect(page.get_by_test_id("bulk-confirm-order")).to_have_count(1)
        expect(page.get_by_test_id("bulk-confirm-order")).to_contain_text(str(supplier))
        _check_layout(page, "laptop bulk confirmation", phone=False)
        _shot(page, "laptop-bulk-confirm", tmp_path)
        clicks.press(page.get_by_test_id("bulk-confirm-approve"), "Approve and send 1 order")
        expect(page.get_by_test_id("bulk-approved-count")).to_have_text("1 order approved and queued for sending.")
        page.goto(base_url + "/queue")
        expect(page.get_by_test_id("queue-empty")).to_be_visible()
        print(f"buyer cleared the queue in {clicks.n} clicks: {clicks.log}")
        assert clicks.n <= 12, clicks.log

        # the dispatcher (the order_dispatch DAG's job) drains the outbox; the order pages show the result
        assert dispatch()["sent"] >= 2
        for oid in (mine[0], mine[2]):
            page.goto(f"{base_url}/orders/{oid}")
            expect(page.get_by_test_id("order-status")).to_have_attribute("data-status", "sent")
            expect(page.get_by_test_id("audit-row").and_(page.locator("[data-event=sent_ref]"))).to_have_count(1)
        page.goto(f"{base_url}/orders/{mine[1]}")
        expect(page.get_by_test_id("order-status")).to_have_attribute("data-status", "cancelled")
    for oid in (mine[0], mine[2]):
        assert (out_dir / "edi" / f"{oid}.edi").exists()
    assert not (out_dir / "edi" / f"{mine[1]}.edi").exists()


@pytest.mark.slow
def test_store_manager_checks_adapts_and_sends_on_a_phone(playwright, world, base_url, out_dir, tmp_path):
    """From the queue: open the order, change one line with a reason, send it now (confirmed): at most 5 taps, on a
    Pixel 7 (412 px) in Berlin. The page stays as wide as the phone after sending, its history too."""
    from playwright.sync_api import expect

    order_id = world["orders"][f"{world['stores'][0]}/{world['suppliers'][1]}/1"]
    _price_lines(order_id)
    viewport, pixel7 = device(playwright, "Pixel 7")
    # a German phone: the times in its zone, in the page's own words and 24 h clock (not "Mi., 1. Mai")
    with chromium_context(playwright, viewport, timezone_id="Europe/Berlin", locale="de-DE", **pixel7) as ctx:
        page = ctx.new_page()
        _sign_in(page, base_url, world["users"]["manager1"])
        rows = page.get_by_test_id("queue-order")
        expect(rows.first).to_be_visible()
        own = {o for k, o in world["orders"].items() if k.split("/")[0] == str(world["stores"][0])}
        for oid in rows.evaluate_all("els => els.map(e => e.dataset.orderId)"):
            assert oid in own  # the manager sees the orders of their store only
        # the first screen shows orders, not filters
        assert page.get_by_test_id("open-order").first.bounding_box()["y"] < viewport["height"] * 0.6
        # each card: the cutoff's time in the phone's zone, named, beside the countdown
        card = page.locator(f'[data-testid=queue-order][data-order-id="{order_id}"]')
        day_time = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d\d:\d\d$")
        expect(card.get_by_test_id("cutoff-time")).to_have_text(day_time)
        expect(card.locator("td.cutoff")).to_contain_text("(Europe/Berlin)")
        expect(card.get_by_test_id("cutoff-countdown")).to_contain_text("left")
        _check_layout(page, "phone queue", phone=True)
        _shot(page, "phone-queue", tmp_path)
        taps = Clicks(touch=True)

        taps.press(page.locator(f'[data-testid=queue-order][data-order-id="{order_id}"] [data-testid=open-order]'),
                   "open the order")
        page.wait_for_url(f"**/orders/{order_id}")
        line = page.locator(f'[data-testid=line][data-item-id="{I2}"]')
        expect(line.get_by_test_id("final-qty")).to_have_text("5")
        _check_layout(page, "phone order", phone=True)
        _shot(page, "phone-order", tmp_path)
        line.get_by_text("Why 5?").tap()  # reading is not counted: it changes nothing
        expect(line.get_by_test_id("why-steps")).to_be_visible()
        line.get_by_text("Why 5?").tap()

        taps.type(line.get_by_test_id("qty-input"), "7", "quantity 5 -> 7")
        taps.choose(line.get_by_test_id("reason-select"), "local_event", "reason: local event")
        taps.press(page.get_by_test_id("send-now"), "Send now...")
        expect(page.get_by_test_id("confirm-send")).to_be_visible()
        expect(page.get_by_test_id("send-confirm")).to_contain_text(str(world["suppliers"][1]))
        # what the confirmation says goes out is what was typed (saved first), not the order as last saved
        typed = sum(UNIT_COST * float(ln.get_by_test_id("qty-input").input_value())
                    for ln in page.get_by_test_id("line").all())
        expect(page.get_by_test_id("send-confirm").get_by_test_id("confirm-value")).to_have_text(f"{typed:,.2f}")
        expect(page.get_by_test_id("send-confirm")).to_contain_text("with your changes")
        _shot(page, "phone-send-confirm", tmp_path)
        taps.press(page.get_by_test_id("confirm-send"), "Yes, send now")
        expect(page.get_by_test_id("notice")).to_have_text("Sent to the supplier.")
        expect(page.get_by_test_id("order-status")).to_have_attribute("data-status", "sent")
        expect(page.get_by_test_id("outbox-status")).to_have_attribute("data-outbox-status", "sent")
        expect(line.get_by_test_id("final-qty")).to_have_text("7")
        expect(line.get_by_test_id("edited-by")).to_contain_text(world["users"]["manager1"]["username"])
        expect(page.get_by_test_id("send-now")).to_have_count(0)
        # the history names the file the supplier got, not the folder on the server (no phone could wrap that)
        sent = page.locator("[data-testid=audit-row][data-event=sent_ref]")
        expect(sent).to_contain_text(f"Delivered to the supplier (file {order_id}.edi)")
        assert str(out_dir) not in page.locator("body").inner_text()
        assert wider_than_the_window(page) == 0, f"sent order: {wider_than_the_window(page)} px wider than a Pixel 7"
        _check_layout(page, "phone sent order", phone=True)
        _shot(page, "phone-sent", tmp_path)
        print(f"store manager sent the order in {taps.n} taps: {taps.log}")
        assert taps.n <= 5, taps.log

    # what the supplier got: the edited quantity, exactly once
    edi = (out_dir / "edi" / f"{order_id}.edi").read_text()
    assert f"LIN+2++{I2}:IN'" in edi.replace("\n", "") and "QTY+21:7:PCE'" in edi


@pytest.mark.slow
@pytest.mark.parametrize("viewport", ["phone", "laptop"])
def test_sign_in_page_is_accessible(playwright, base_url, viewport: str, tmp_path) -> None:
    phone = viewport == "phone"
    with chromium_context(playwright, PHONE if phone else LAPTOP, is_mobile=phone, has_touch=phone) as ctx:
        page = ctx.new_page()
        page.goto(base_url + "/login")
        _check_layout(page, f"{viewport} sign-in", phone=phone)
        page.get_by_label("Username").fill("nobody")
        page.get_by_label("Password").fill("wrong")
        page.get_by_test_id("login-submit").click()
        expect_error = page.get_by_test_id("login-error")
        expect_error.wait_for()
        _check_layout(page, f"{viewport} sign-in error", phone=phone)
        _shot(page, f"{viewport}-signin", tmp_path)


@pytest.mark.slow
def test_queue_and_order_are_accessible_on_both_viewports(playwright, world, base_url, tmp_path) -> None:
    """axe-core finds no serious violation on the queue (all orders, filters open) and on an order page with a
    failed change (errors shown), on a phone and on a laptop."""
    oid = world["orders"][f"{world['stores'][1]}/{world['suppliers'][1]}/1"]
    for name, vp, phone in (("phone", PHONE, True), ("laptop", LAPTOP, False)):
        with chromium_context(playwright, vp, is_mobile=phone, has_touch=phone) as ctx:
            page = ctx.new_page()
            _sign_in(page, base_url, world["users"]["admin"])
            page.goto(base_url + "/queue?status=all&sort=store&dir=desc")
            page.get_by_text("Filters").first.click() if phone else None
            _check_layout(page, f"{name} queue, all orders", phone=phone)
            page.goto(f"{base_url}/orders/{oid}")
            line = page.locator(f'[data-testid=line][data-item-id="{I1}"]')
            line.get_by_test_id("qty-input").fill("18")  # (13 the browser refuses itself: not a pack multiple)
            page.get_by_test_id("save").click()  # no reason given
            line.get_by_test_id("line-error").first.wait_for()
            assert "Choose a reason for this change." in line.get_by_test_id("line-error").first.inner_text()
            _check_layout(page, f"{name} order with errors", phone=phone)
            page.get_by_text("Reject this order").click()
            page.get_by_text("Add an item").click()
            _check_layout(page, f"{name} order, all open", phone=phone)


@pytest.mark.slow
def test_after_a_save_the_focus_is_on_what_happened(playwright, base_url) -> None:
    """Keyboard only: Save on the order page swaps the page (htmx). The focus lands on the error when nothing was
    saved, on "Change saved." when it was: a screen reader reads it, and Tab goes on from there, not from the top."""
    from support.platform_app import retire, seeded_world

    world = seeded_world()  # an open order of its own
    try:
        oid = world["orders"][f"{world['stores'][0]}/{world['suppliers'][1]}/1"]
        with chromium_context(playwright, LAPTOP) as ctx:
            page = ctx.new_page()
            _sign_in(page, base_url, world["users"]["manager1"])
            page.goto(f"{base_url}/orders/{oid}")
            line = page.locator(f'[data-testid=line][data-item-id="{I1}"]')
            line.get_by_test_id("qty-input").fill("18")
            page.get_by_test_id("save").focus()
            page.keyboard.press("Enter")  # no reason chosen
            line.get_by_test_id("line-error").first.wait_for()
            # the focus moves once the swap has settled (htmx's settle delay): wait for it, then say where it is
            def focus_on(testid: str) -> str | None:
                focused = "() => document.activeElement && document.activeElement.getAttribute('data-testid')"
                try:
                    page.wait_for_function(f"() => ({focused})() === {testid!r}", timeout=5_000)
                except Exception:  # noqa: BLE001 - the assertion below names where the focus is instead
                    pass
                return page.evaluate(focused)

            assert focus_on("error") == "error"
            line.get_by_test_id("reason-select").select_option("weather")
            page.get_by_test_id("save").focus()
            page.keyboard.press("Enter")
            page.get_by_test_id("notice").wait_for()
            assert page.get_by_test_id("notice").inner_text() == "Change saved."
            assert focus_on("notice") == "notice"
    finally:
        retire(world)


@pytest.mark.slow
def test_a_change_saved_after_the_session_ended_is_typed_again_after_the_sign_in(playwright, base_url) -> None:
    """A store manager types a quantity and a reason, leaves the phone, comes back and taps Save: the session has
    ended. After the sign-in the order is back with what was typed in its fields, not saved yet; saving saves it.
    Someone else signing in on that tab does not get it."""
    from sqlalchemy import text
    from support.platform_app import retire, seeded_world

    from replenish.database import engine

    def session_ends() -> None:
        with engine().begin() as conn:
            conn.execute(text("UPDATE platform.sessions SET last_seen_at = now() - interval '1 day'"))

    def sign_in_here(page: Any, user: dict[str, str]) -> None:
        page.get_by_label("Username").fill(user["username"])
        page.get_by_label("Password").fill(user["password"])
        page.get_by_test_id("login-submit").click()

    def typed_then_signed_in_again(page: Any, qty: str, reason: str, who: dict[str, str]) -> Any:
        """Type a change on the order, let the session end, save (refused), sign in as ``who``: the order's line."""
        line = page.locator(f'[data-testid=line][data-item-id="{I1}"]')
        line.get_by_test_id("qty-input").fill(qty)
        line.get_by_test_id("reason-select").select_option(reason)
        session_ends()
        page.get_by_test_id("save").click()
        page.get_by_test_id("login-form").wait_for()
        sign_in_here(page, who)
        page.wait_for_url(f"**/orders/{oid}?done=not_saved")
        return page.locator(f'[data-testid=line][data-item-id="{I1}"]')

    world = seeded_world()
    try:
        oid = world["orders"][f"{world['stores'][0]}/{world['suppliers'][1]}/1"]
        with chromium_context(playwright, PHONE, is_mobile=True, has_touch=True) as ctx:
            page = ctx.new_page()
            _sign_in(page, base_url, world["users"]["manager1"])
            page.goto(f"{base_url}/orders/{oid}")
            line = typed_then_signed_in_again(page, "18", "weather", world["users"]["manager1"])
            page.wait_for_function("() => sessionStorage.getItem('replenish:unsaved') === null", timeout=5_000)
            assert line.get_by_test_id("qty-input").input_value() == "18"
            assert line.get_by_test_id("reason-select").input_value() == "weather"
            assert "what you typed before is back in the fields below" in page.get_by_test_id("notice").inner_text()
            assert line.get_by_test_id("final-qty").inner_text() == "12"  # not saved by itself
            page.get_by_test_id("save").click()
            page.wait_for_url("**done=saved")
            assert page.locator(f'[data-testid=line][data-item-id="{I1}"]').get_by_test_id(
                "final-qty").inner_text() == "18"
            # typed, session ended, but another person signs in on this tab: nothing of it for them
            line = typed_then_signed_in_again(page, "24", "promotion", world["users"]["admin"])
            line.get_by_test_id("proposed-qty").wait_for()
            page.wait_for_function("() => sessionStorage.getItem('replenish:unsaved') === null", timeout=5_000)
            assert line.get_by_test_id("qty-input").input_value() == "18"
            # a page opened before the last sign-in (signed in again in another tab): "Page out of date", and the
            # way back to the order brings what was typed back too
            line.get_by_test_id("qty-input").fill("30")
            line.get_by_test_id("reason-select").select_option("promotion")
            other_tab = ctx.new_page()
            other_tab.goto(base_url + "/login")
            sign_in_here(other_tab, world["users"]["admin"])
            other_tab.wait_for_url("**/queue")
            page.get_by_test_id("save").click()
            page.get_by_test_id("error-back").click()
            page.wait_for_url(f"**/orders/{oid}")
            line = page.locator(f'[data-testid=line][data-item-id="{I1}"]')
            page.wait_for_function("() => sessionStorage.getItem('replenish:unsaved') === null", timeout=5_000)
            assert line.get_by_test_id("qty-input").input_value() == "30"
            assert "back in the fields below" in page.get_by_test_id("notice").inner_text()
    finally:
        retire(world)


@pytest.mark.slow
def test_a_long_reference_in_the_history_wraps_on_a_phone(playwright, world, base_url) -> None:
    """A supplier's system may answer with a reference of any length and no space in it: the history breaks it, and
    the order page stays as wide as a Pixel 7."""
    from playwright.sync_api import expect

    from replenish.database import engine
    from replenish.orders.order_tables import add_event

    oid = world["orders"][f"{world['stores'][1]}/{world['suppliers'][1]}/1"]
    ref = "SO-" + "7F3A9C" * 20
    with engine().begin() as conn:
        add_event(conn, oid, "dispatcher:browser-test", "sent_ref", None, ref)
    viewport, pixel7 = device(playwright, "Pixel 7")
    with chromium_context(playwright, viewport, **pixel7) as ctx:
        page = ctx.new_page()
        _sign_in(page, base_url, world["users"]["manager2"])
        page.goto(f"{base_url}/orders/{oid}")
        expect(page.locator("[data-testid=audit-row][data-event=sent_ref]")).to_contain_text(ref)
        assert wider_than_the_window(page) == 0, f"{wider_than_the_window(page)} px wider than a Pixel 7"


@pytest.mark.slow
def test_data_docs_list_fits_a_phone(playwright, world, base_url) -> None:
    """``/data-docs/`` is the platform's own page (GX's index needs CDN scripts): its list of validation pages, whose
    suite and batch names are long words, fits a Pixel 7 and passes the layout checks."""
    import shutil

    from playwright.sync_api import expect

    from replenish.settings import get_settings

    suite = get_settings().state / "data_docs" / "validations" / f"{world['tag']}_mart_daily_demand_keys_unique"
    page_file = suite / "nightly" / "20190501T001500.123Z" / "warehouse-mart_daily_demand_keys_unique_batch.html"
    page_file.parent.mkdir(parents=True, exist_ok=True)
    page_file.write_text("<html><body>validation page</body></html>")
    try:
        viewport, pixel7 = device(playwright, "Pixel 7")
        with chromium_context(playwright, viewport, **pixel7) as ctx:
            page = ctx.new_page()
            _sign_in(page, base_url, world["users"]["admin"])
            page.goto(base_url + "/data-docs/")
            expect(page.get_by_test_id("validation-link").first).to_be_visible()
            assert wider_than_the_window(page) == 0, f"{wider_than_the_window(page)} px wider than a Pixel 7"
            _check_layout(page, "phone Data Docs list", phone=True)
    finally:
        shutil.rmtree(suite)


@pytest.mark.slow
def test_stock_outs_page_is_accessible_on_both_viewports(playwright, world, base_url) -> None:
    """``/service`` with two items (their figures and causes) passes the layout checks on a phone and a laptop,
    a store manager's (their own store's figures, the chain's beside them) on a phone, and the queue links to it."""
    import datetime as dt

    import pandas as pd
    from sqlalchemy import text
    from support.platform_app import night_verdict, service_item

    from replenish import clock
    from replenish.database import begin, engine
    from replenish.forecasting import stockout_causes

    day = clock.today() - dt.timedelta(days=1)
    store = world["stores"][0]      # manager1's: their own store's days, the chain's beside them
    stockout_causes.record(engine(), day, pd.DataFrame(
        [(store, I1, "ordered_outside", 20, 10, 0.3), (store, I1, "as_proposed", 8, 1, 0.3)],
        columns=list(stockout_causes.CAUSE_ROW_COLUMNS)))
    try:
        with night_verdict(day, [service_item(I1, 0.5), service_item(I2, 0.31)]):
            for who, name, vp, phone, cards in (("buyer1", "phone", PHONE, True, 2),
                                                ("buyer1", "laptop", LAPTOP, False, 2),
                                                ("manager1", "phone", PHONE, True, 1)):
                with chromium_context(playwright, vp, is_mobile=phone, has_touch=phone) as ctx:
                    page = ctx.new_page()
                    _sign_in(page, base_url, world["users"][who])
                    page.get_by_test_id("service-link").click()
                    page.wait_for_url("**/service")
                    assert page.get_by_test_id("service-item").count() == cards
                    _check_layout(page, f"{who} {name} stock-outs page", phone=phone)
    finally:
        with begin() as c:
            c.execute(text("DELETE FROM forecast.stockout_causes WHERE business_date = :d"), {"d": day})


@pytest.mark.skipif(not os.environ.get("REPLENISH_README_DEMO_URL"),
                    reason="README screenshots: set REPLENISH_README_DEMO_URL and REPLENISH_README_DEMO_ADMIN_PASSWORD")
def test_readme_screenshots_of_the_demo(playwright) -> None:
    """The README's pictures, taken on a running demo (`replenish serve --demo-users`): the queue and the order in
    review on a laptop and a phone, written to docs/screenshots/ (or REPLENISH_SCREENSHOT_DIR). The same layout
    checks as the flows apply to the real data."""
    base = os.environ["REPLENISH_README_DEMO_URL"].rstrip("/")
    admin = {"username": "demo-admin", "display": "Demo admin",
             "password": os.environ["REPLENISH_README_DEMO_ADMIN_PASSWORD"]}
    target = Path(os.environ.get("REPLENISH_SCREENSHOT_DIR") or Path(__file__).parents[1] / "docs" / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    for name, vp, phone in (("laptop", LAPTOP, False), ("phone", PHONE, True)):
        with chromium_context(playwright, vp, is_mobile=phone, has_touch=phone) as ctx:
            page = ctx.new_page()
            _sign_in(page, base, admin)
            page.goto(base + "/queue?status=all&sort=cutoff")
            _check_layout(page, f"demo {name} queue", phone=phone)
            page.screenshot(path=str(target / f"{name}-queue.png"))
            page.goto(base + "/queue")
            page.get_by_test_id("open-order").first.click()
            page.wait_for_url("**/orders/*")
            _check_layout(page, f"demo {name} order", phone=phone)
            page.get_by_test_id("why").first.locator("summary").click()
            page.screenshot(path=str(target / f"{name}-order.png"), full_page=not phone)
            if not phone:
                page.get_by_test_id("approve").click()
                page.screenshot(path=str(target / f"{name}-approve-confirm.png"))

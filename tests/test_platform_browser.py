"""The ordering platform in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser).

The app runs in-process under uvicorn on a loopback port against the test database; its "send now"
runs the real dispatcher with the real channels writing to a temporary directory (EDIFACT files for the
seeded orders, .eml files for email orders). Screenshots go to REPLENISH_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import CHROMIUM, LAPTOP, PHONE, app_in_thread, chromium_context

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
    from replenish.database import engine
    from replenish.orders.store import ensure_schema
    from replenish.platform.demo import seed_demo

    with engine().begin() as conn:
        ensure_schema(conn)
        return seed_demo(conn)


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
    assert page.get_by_test_id("user-name").inner_text().startswith(user["username"])


def _no_horizontal_scroll(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"page is {overflow}px wider than the viewport"


@pytest.mark.slow
def test_store_manager_on_a_phone_adjusts_approves_and_sends(playwright, world, base_url, out_dir, tmp_path):
    from playwright.sync_api import expect

    order_id = world["orders"][f"{world['stores'][0]}/{world['suppliers'][0]}/1"]
    with chromium_context(playwright, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2) as ctx:
        page = ctx.new_page()
        _sign_in(page, base_url, world["users"]["manager1"])
        # the manager sees the orders of their store only
        rows = page.get_by_test_id("queue-order")
        expect(rows).to_have_count(3)
        for oid in rows.evaluate_all("els => els.map(e => e.dataset.orderId)"):
            assert world["stores"][0] in oid
        _no_horizontal_scroll(page)
        _shot(page, "phone-queue", tmp_path)

        page.locator(f'[data-testid=queue-order][data-order-id="{order_id}"] [data-testid=open-order]').tap()
        page.wait_for_url(f"**/orders/{order_id}")
        line = page.locator('[data-testid=line][data-item-id="I2"]')
        expect(line.get_by_test_id("final-qty")).to_have_text("5")
        _no_horizontal_scroll(page)
        _shot(page, "phone-order", tmp_path)

        # adjust a line: 5 -> 7 with a reason
        line.get_by_test_id("qty-input").fill("7")
        line.get_by_test_id("reason-select").select_option("local_event")
        line.get_by_test_id("save-line").tap()
        expect(page.get_by_test_id("notice")).to_have_text("Change saved.")
        expect(line.get_by_test_id("final-qty")).to_have_text("7")
        expect(line.get_by_test_id("edited-by")).to_contain_text(world["users"]["manager1"]["username"])

        page.get_by_test_id("approve").tap()
        expect(page.get_by_test_id("notice")).to_have_text("Order approved and queued for sending.")
        expect(page.get_by_test_id("order-status")).to_have_text("queued")

        page.get_by_test_id("send-now").tap()
        expect(page.get_by_test_id("order-status")).to_have_text("sent")
        expect(page.get_by_test_id("outbox-status")).to_have_attribute("data-outbox-status", "sent")
        expect(page.get_by_test_id("send-now")).to_have_count(0)
        _shot(page, "phone-sent", tmp_path)

    # what the supplier got: the edited quantity, exactly once
    edi = (out_dir / "edi" / f"{order_id}.edi").read_text()
    assert "LIN+2++I2:SA'" in edi.replace("\n", "") and "QTY+21:7:PCE'" in edi


@pytest.mark.slow
def test_buyer_on_a_laptop_bulk_approves_and_the_orders_are_sent(
    playwright, world, base_url, dispatch, out_dir, tmp_path
):
    from playwright.sync_api import expect

    supplier = world["suppliers"][1]  # buyer2: supplier P2 (the manager test touched P1 only)
    mine = [world["orders"][f"{store}/{supplier}/1"] for store in world["stores"]]
    with chromium_context(playwright, LAPTOP) as ctx:
        page = ctx.new_page()
        _sign_in(page, base_url, world["users"]["buyer2"])
        rows = page.get_by_test_id("queue-order")
        expect(rows).to_have_count(2)
        _no_horizontal_scroll(page)
        _shot(page, "laptop-queue", tmp_path)
        for oid in mine:
            page.locator(f'[data-testid=queue-order][data-order-id="{oid}"] [data-testid=bulk-select]').check()
        page.get_by_test_id("bulk-approve").click()
        expect(page.get_by_test_id("bulk-approved-count")).to_have_text("2 order(s) approved and queued.")
        expect(page.get_by_test_id("bulk-failed")).to_have_count(0)
        _shot(page, "laptop-bulk-result", tmp_path)

        # the dispatcher (the order_dispatch DAG's job) drains the outbox; the order pages show the result
        result = dispatch()
        assert result["sent"] >= 2
        for oid in mine:
            page.goto(f"{base_url}/orders/{oid}")
            expect(page.get_by_test_id("order-status")).to_have_text("sent")
            expect(page.get_by_test_id("audit-row").and_(page.locator("[data-event=sent_ref]"))).to_have_count(1)
        _shot(page, "laptop-order-sent", tmp_path)
    for oid in mine:
        assert (out_dir / "edi" / f"{oid}.edi").exists()

"""The product's journey, end to end: a night's orders go out without a person, the rest reach a buyer.

Real PostgreSQL, a real Airflow run of the nightly DAG (``dag.test``), real Chromium:
nightly -> digest mail with a deep link -> the buyer opens it, edits a line, approves -> the order is sent exactly
once through the outbox (the ``order_dispatch`` DAG, twice) -> the audit trail shows every step -> a second nightly
for the same business date changes nothing that was sent.

The journey runs in a database of its own, new on every run, as a fresh installation would; the clock is pinned
(frozen) to the night after the business date, as ``make demo`` pins it; one store is set to manual release in the
rules file, so the buyer has an order to decide.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from support.browser import CHROMIUM, LAPTOP, app_in_thread, chromium_context

BUSINESS_DATE = dt.date(2019, 4, 25)  # a Thursday: both suppliers take orders on Friday
WINDOW_START = dt.date(2019, 1, 20)
MANUAL_STORE = "3"
JOURNEY_DB = "replenish_journey_test"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                                   reason=f"{CHROMIUM} missing: run `make chromium`")]


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from replenish import clock, pipeline
    from replenish.data.exports import write_exports
    from replenish.data.retailer import generate_retailer
    from replenish.orchestration import run_dag
    from replenish.orders.release import RULES_PATH
    from replenish.platform.cli_commands import seed_and_describe
    from replenish.settings import get_settings

    settings = get_settings()
    tmp = tmp_path_factory.mktemp("journey")
    saved_db = settings.embedded_database
    _fresh_database(settings)
    settings.embedded_database = JOURNEY_DB
    for folder in (settings.outbox_dir, settings.edi_outbound_dir):  # what earlier runs of this test sent
        for stale in folder.glob("*") if folder.exists() else ():
            if stale.name.startswith((f"digest-{BUSINESS_DATE}", f"PO{_order_date():%Y%m}")):
                stale.unlink()
    root = settings.state / "test-exports-journey"
    write_exports(generate_retailer(settings), root, start=WINDOW_START, end=BUSINESS_DATE)
    rules = tmp / "rules.yml"
    rules.write_text(RULES_PATH.read_text().replace(
        "overrides: []",
        f"overrides:\n  - name: store-{MANUAL_STORE}-manual\n    match: {{store_id: {MANUAL_STORE}}}\n"
        "    set: {auto_release: false}\n"))
    saved = (settings.exports_root, settings.release_rules_path)
    settings.exports_root, settings.release_rules_path = root, rules
    clock.set_clock(clock.end_of_business_day(BUSINESS_DATE) + dt.timedelta(hours=1), frozen=True, set_by="test")
    try:
        pipeline.extract(BUSINESS_DATE, "journey-setup")
        pipeline.transform(BUSINESS_DATE, "journey-setup")
        assert "success" in run_dag("forecast_training", BUSINESS_DATE)["state"]
        users = {u["username"]: u for u in seed_and_describe()}
        res = run_dag("replenishment_nightly", BUSINESS_DATE)
        assert "success" in res["state"], res
        yield {"run": res, "users": users, "tmp": tmp}
    finally:
        clock.reset_clock()
        settings.exports_root, settings.release_rules_path = saved
        settings.embedded_database = saved_db


def _fresh_database(settings: Any) -> None:
    from sqlalchemy import create_engine

    from replenish.database import database_url, sqlalchemy_url

    admin = create_engine(sqlalchemy_url(database_url(settings)), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{JOURNEY_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{JOURNEY_DB}"'))
    admin.dispose()


def _q(sql: str, **params: Any) -> list[Any]:
    from replenish.database import begin

    with begin() as conn:
        return list(conn.execute(text(sql), params).all())


def _order_date() -> dt.date:
    from replenish import clock

    return clock.order_date_for(BUSINESS_DATE)


def test_the_night_sends_most_orders_without_a_person(night: Any) -> None:
    from replenish.status import night_outcome

    out = night_outcome(BUSINESS_DATE)
    assert out["orders"] > 0 and out["released_automatically"] > 0 and out["sent"] > 0
    assert out["alerts"] <= out["orders"]
    assert out["escalated_at_cutoff"] == 0
    # without a SendGrid key the e-mail suppliers' orders are only in the outbox folder: counted as sent, told apart
    emailed = _q("SELECT count(*) FROM orders.purchase_orders WHERE order_date = :d AND status = 'sent' "
                 "AND channel = 'email'", d=_order_date())[0][0]
    assert out["sent_kept_on_disk"] == emailed > 0
    escalated = _q("SELECT count(*) FROM orders.purchase_orders WHERE order_date = :d "
                   "AND 'cutoff_escalated' = ANY(reasons)", d=_order_date())[0][0]
    assert escalated == 0
    # every order of the manual store waits for a person, with a reason a buyer can read
    held = _q("SELECT status, reasons FROM orders.purchase_orders WHERE order_date = :d AND store_id = :s",
              d=_order_date(), s=MANUAL_STORE)
    assert held and all(st == "in_review" and "auto_release_disabled" in rs for st, rs in held)
    others = _q("SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FROM orders.purchase_orders "
                "WHERE order_date = :d AND store_id <> :s", d=_order_date(), s=MANUAL_STORE)[0]
    assert others[0] >= 0.8 * others[1], others
    # the night's stamps read the one clock (pinned at 01:00 after D), not the machine's: when an order was sent
    # and last changed show on the order page and in the POS API beside its history
    from replenish import clock

    stamps = _q("SELECT o.sent_at, p.updated_at FROM orders.outbox o JOIN orders.purchase_orders p USING (order_id) "
                "WHERE p.order_date = :d AND o.status = 'sent'", d=_order_date())
    assert stamps and {clock.local(t).date() for row in stamps for t in row} == {_order_date()}


def test_buyer_follows_the_digest_link_edits_approves_and_it_is_sent_once(night: Any, playwright: Any) -> None:
    from playwright.sync_api import expect

    from replenish import clock
    from replenish.database import engine
    from replenish.orchestration import run_dag
    from replenish.platform.app import create_app
    from replenish.settings import get_settings

    settings = get_settings()
    order_id, supplier = _q("SELECT order_id, supplier_id FROM orders.purchase_orders WHERE order_date = :d "
                            "AND store_id = :s ORDER BY supplier_id LIMIT 1", d=_order_date(), s=MANUAL_STORE)[0]
    buyer = next(u for u in night["users"].values() if u["role"] == "buyer" and supplier in u["scopes"]["supplier"])
    user_id = _q("SELECT user_id FROM platform.users WHERE username = :u", u=buyer["username"])[0][0]
    mail = settings.outbox_dir / f"digest-{BUSINESS_DATE.isoformat()}-u{user_id}.eml"
    msg = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
    body = "".join(part.get_content() for part in msg.walk() if part.get_content_type() == "text/plain")
    links = re.findall(r"https?://[^\s\"<>]+/orders/([A-Z0-9]+)", body)
    assert order_id in links, f"the digest does not link to {order_id}"

    with app_in_thread(create_app(settings, engine=engine())) as base, chromium_context(playwright, LAPTOP) as ctx:
        page = ctx.new_page()
        page.goto(f"{base}/orders/{order_id}")  # the deep link: sign in first, then straight to the order
        page.get_by_label("Username").fill(buyer["username"])
        page.get_by_label("Password").fill(buyer["password"])
        page.get_by_test_id("login-submit").click()
        page.wait_for_url(f"**/orders/{order_id}")
        expect(page.get_by_test_id("order-status")).to_have_attribute("data-status", "in_review")
        line = page.get_by_test_id("line").first
        item = line.get_attribute("data-item-id")
        qty = int(line.get_by_test_id("final-qty").inner_text())
        pack = int(line.get_by_test_id("qty-input").get_attribute("step") or 1)
        line.get_by_test_id("qty-input").fill(str(qty + pack))
        line.get_by_test_id("reason-select").select_option("local_event")
        page.get_by_test_id("save").click()
        expect(page.get_by_test_id("notice")).to_have_text("Change saved.")
        page.get_by_test_id("approve").click()
        page.get_by_test_id("confirm-approve").click()  # the confirmation names supplier, lines and value
        page.wait_for_url("**/queue?done=approved")
        page.goto(f"{base}/orders/{order_id}")
        expect(page.get_by_test_id("order-status")).to_have_attribute("data-status", "queued")

    # the frequent dispatch DAG sends it; running it again sends nothing more
    for _ in range(2):
        assert "success" in run_dag("order_dispatch", BUSINESS_DATE)["state"]
    assert _q("SELECT status FROM orders.purchase_orders WHERE order_id = :o", o=order_id)[0][0] == "sent"
    assert _q("SELECT count(*) FROM orders.outbox WHERE order_id = :o AND status = 'sent'", o=order_id)[0][0] == 1
    sent_files = _sent_files(settings, order_id)
    assert len(sent_files) == 1, sent_files
    assert str(qty + pack) in sent_files[0].read_text(errors="replace")

    events = [e for _, e in _q("SELECT actor, event FROM orders.order_events WHERE order_id = :o ORDER BY event_id",
                               o=order_id)]
    assert events[0] == "created" and f"line_edited:{item}" in events and "sent_ref" in events
    statuses = [t for (t,) in _q("SELECT to_value FROM orders.order_events WHERE order_id = :o AND event = 'status' "
                                 "ORDER BY event_id", o=order_id)]
    assert statuses[-3:] == ["approved", "queued", "sent"] and "in_review" in statuses
    assert clock.today() == _order_date()
    # the history is stamped with the platform's clock (frozen here), as the cutoff beside it, not the machine's
    assert {at for (at,) in _q("SELECT at FROM orders.order_events WHERE order_id = :o", o=order_id)} == {clock.now()}


def _sent_files(settings: Any, order_id: str) -> list[Path]:
    return [p for d in (settings.outbox_dir, settings.edi_outbound_dir) if d.exists()
            for p in d.iterdir() if order_id in p.name]


def test_a_second_nightly_changes_nothing_that_was_sent(night: Any) -> None:
    from replenish.orchestration import run_dag
    from replenish.settings import get_settings

    settings = get_settings()
    snapshot = ("SELECT p.order_id, p.status, p.version, l.item_id, l.final_qty FROM orders.purchase_orders p "
                "JOIN orders.order_lines l USING (order_id) WHERE p.order_date = :d AND p.status = 'sent' "
                "ORDER BY 1, 4")
    before = _q(snapshot, d=_order_date())
    sent_ids = sorted({r[0] for r in before})
    files = {oid: len(_sent_files(settings, oid)) for oid in sent_ids}
    digests = _q("SELECT count(*), count(*) FILTER (WHERE status = 'sent') FROM orders.digest_outbox "
                 "WHERE business_date = :b", b=BUSINESS_DATE)[0]
    res = run_dag("replenishment_nightly", BUSINESS_DATE)
    assert "success" in res["state"]
    assert _q(snapshot, d=_order_date()) == before
    assert {oid: len(_sent_files(settings, oid)) for oid in sent_ids} == files
    assert _q("SELECT count(*), count(*) FILTER (WHERE status = 'sent') FROM orders.digest_outbox "
              "WHERE business_date = :b", b=BUSINESS_DATE)[0] == digests
    assert _q("SELECT count(*) FROM orders.outbox o JOIN orders.purchase_orders p USING (order_id) "
              "WHERE p.order_date = :d GROUP BY o.order_id HAVING count(*) > 1", d=_order_date()) == []

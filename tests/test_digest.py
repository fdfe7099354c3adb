"""Buyer digests on a dedicated database, sent to a local SendGrid-compatible server.

The database ``replenish_test_digest`` holds just the tables the digest reads (the project's own DDL for
orders, platform, ops quality and forecast; minimal marts), so these tests never touch the shared
warehouse's marts that dbt builds.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import uuid

import pytest
from sqlalchemy import create_engine, text
from support.sendgrid_local import SendGridServer

from replenish.database import sqlalchemy_url
from replenish.orders.channels import EmailChannel
from replenish.orders.dispatcher import DispatchConfig, SimulatedCrash
from replenish.settings import Settings

TEST_DB = "replenish_test_digest"
MARTS = """
CREATE SCHEMA IF NOT EXISTS marts;
CREATE TABLE IF NOT EXISTS marts.dim_items (item_id bigint PRIMARY KEY, item_name text, category text);
CREATE TABLE IF NOT EXISTS marts.dim_stores (store_id bigint PRIMARY KEY, store_name text);
CREATE TABLE IF NOT EXISTS marts.dim_suppliers (supplier_id bigint PRIMARY KEY, supplier_name text);
CREATE TABLE IF NOT EXISTS marts.fct_daily_demand (store_id bigint, item_id bigint, demand_date date,
    units_sold numeric, is_stockout boolean, is_public_holiday boolean,
    PRIMARY KEY (store_id, item_id, demand_date));
CREATE TABLE IF NOT EXISTS marts.fct_demand_drivers (store_id bigint, item_id bigint, driver_date date,
    is_public_holiday boolean, PRIMARY KEY (store_id, item_id, driver_date));
CREATE TABLE IF NOT EXISTS marts.dim_replenishment_parameters (store_id bigint, item_id bigint, supplier_id bigint,
    PRIMARY KEY (store_id, item_id, supplier_id));
"""
BASE = "https://replenish.example.test"
FAST = DispatchConfig(max_attempts=3, base_delay_s=0, jitter=0)
_DAYS = itertools.count()
BREAD, CAKE = 31, 32  # the suppliers of bread and of cake


@pytest.fixture(scope="module")
def eng():
    from support.databases import scratch_database

    from replenish import migrations
    from replenish.platform.accounts import add_user

    e = create_engine(sqlalchemy_url(scratch_database(TEST_DB)), future=True)
    migrations.upgrade(e)
    with e.begin() as c:
        c.exec_driver_sql(MARTS)
        c.execute(text("INSERT INTO marts.dim_items VALUES (10, 'Weizenbroetchen', 'bread'), "
                       "(20, 'Apfelkuchen', 'cake')"))
        # names for store 1 and the bread supplier only: the others are told by id
        c.execute(text("INSERT INTO marts.dim_stores VALUES (1, 'Filiale Mitte')"))
        c.execute(text("INSERT INTO marts.dim_suppliers VALUES (:b, 'Backstube Nord')"), {"b": BREAD})
        c.execute(text("INSERT INTO marts.dim_replenishment_parameters VALUES (1, 10, :b), (1, 20, :c), "
                       "(2, 10, :b), (2, 20, :c)"), {"b": BREAD, "c": CAKE})
        add_user(c, "anna", "anna@retailer.test", "buyer", display_name="Anna", scopes={"supplier": [BREAD]})
        add_user(c, "carl", "carl@retailer.test", "buyer", display_name="Carl", scopes={"category": ["cake"]})
        add_user(c, "nobody", "nobody@retailer.test", "buyer")  # no scope: no mail
        add_user(c, "olga", "olga@retailer.test", "buyer", scopes={"supplier": [BREAD]})
        c.execute(text("UPDATE platform.users SET is_active = false WHERE username = 'olga'"))
        add_user(c, "root", "root@retailer.test", "admin")
    yield e
    e.dispose()


def _order(c, d: dt.date, store: int, supplier: int, item: int, status: str, *, released_by=None, reasons=(),
           value=100.0, outbox_status=None, error=None) -> str:
    oid = f"PO-{uuid.uuid4().hex[:10]}"
    c.execute(
        text("""INSERT INTO orders.purchase_orders (order_id, store_id, supplier_id, delivery_date, order_date,
                    cutoff_at, status, reasons, order_value, released_by, channel)
                VALUES (:o, :s, :p, :dd, :d, :cut, :st, :r, :v, :rb, 'email')"""),
        # the nightly for business date d proposed the orders of d + 1 (replenish.clock.order_date_for)
        {"o": oid, "s": store, "p": supplier, "dd": d + dt.timedelta(days=2), "d": d + dt.timedelta(days=1),
         "st": status,
         "cut": dt.datetime.combine(d + dt.timedelta(days=1), dt.time(10, 0), tzinfo=dt.UTC),
         "r": list(reasons), "v": value, "rb": released_by},
    )
    c.execute(text("INSERT INTO orders.order_lines VALUES (:o, :i, 10, 10, NULL)"), {"o": oid, "i": item})
    if outbox_status:
        c.execute(
            text("""INSERT INTO orders.outbox (order_id, idempotency_key, channel, payload, status, attempts,
                        last_error) VALUES (:o, :o, 'email', '{}', :st, 5, :e)"""),
            {"o": oid, "st": outbox_status, "e": error},
        )
    return oid


def _cancelled_after_delivery(c, order_id: str) -> None:
    c.execute(text("INSERT INTO orders.order_events (order_id, at, actor, event, to_value) VALUES "
                   "(:o, now(), 'cutoff:expired', 'cancel_reason', 'delivery_date_passed')"), {"o": order_id})


def _earlier_digest(c, d: dt.date, username: str, digest: dict) -> None:
    """A digest already composed for ``username`` on business date ``d``, with ``digest`` as its content."""
    c.execute(text("""INSERT INTO orders.digest_outbox (business_date, user_id, idempotency_key, recipient, subject,
                          payload, status)
                      SELECT :d, user_id, 'test-' || :d || '-' || user_id, email, 's', CAST(:p AS jsonb), 'sent'
                        FROM platform.users WHERE username = :u"""),
              {"d": d, "u": username, "p": json.dumps({"digest": digest})})


@pytest.fixture
def day(eng):
    """A fresh business date with two orders to review, one released and sent, one dead letter,
    a blocked store and a forecast far from last year."""
    d = dt.date(2030, 1, 7) + dt.timedelta(days=40 * next(_DAYS))
    with eng.begin() as c:
        ids = {
            "bread_review": _order(c, d, 1, BREAD, 10, "in_review", reasons=("quantity_unusual",)),
            "cake_review": _order(c, d, 2, CAKE, 20, "in_review", reasons=("promotion",)),
            "bread_auto": _order(c, d, 2, BREAD, 10, "sent", released_by="release:r1:rules-v1", value=250.5),
            "cake_dead": _order(c, d, 1, CAKE, 20, "dead_letter", released_by="release:r1:rules-v1",
                                outbox_status="dead_letter",
                                error="ChannelError: SendGrid HTTP 503 (logged in /srv/replenish/.state/logs/x.log)"),
            # for delivery on d, still in review when d was over: cancelled by the night's dispatch
            "bread_missed": _order(c, d - dt.timedelta(days=2), 1, BREAD, 10, "cancelled",
                                   reasons=("cutoff_escalated", "delivery_date_passed")),
            # an earlier delivery's: told in its own night's digest, not in this one
            "bread_missed_before": _order(c, d - dt.timedelta(days=3), 1, BREAD, 10, "cancelled"),
        }
        for k in ("bread_missed", "bread_missed_before"):
            _cancelled_after_delivery(c, ids[k])
        # told in Anna's digest of d - 1 (composed before digests recorded missed_delivery_ids: its listed orders)
        _earlier_digest(c, d - dt.timedelta(days=1), "anna",
                       {"missed_deliveries": [{"order_id": ids["bread_missed_before"]}]})
        c.execute(text("INSERT INTO ops.quality_gate VALUES ('q' || :d, :d, 2, true, '{stock_snapshot_freshness}')"),
                  {"d": d})
        c.execute(text("INSERT INTO ops.quality_gate VALUES ('q' || :d, :d, 1, false, '{}')"), {"d": d})
        # the gate's reasons in words, one with text from an export (escaped in the HTML mail)
        c.execute(text("INSERT INTO ops.quality_gate (run_id, business_date, store_id, is_automation_blocked, "
                       "reasons, details) VALUES ('q' || :d, :d, 3, true, :codes, :why)"),
                  {"d": d, "codes": ["sales_collapse", "quarantined_store_rows"],
                   "why": ["only 0 units sold on Monday, where the store usually sells about 310 on a Monday",
                           "1 row of its POS exports rejected into quarantine (field quantity: <b>lots</b>)"]})
        for item, p50, last_year in ((20, 90.0, 30), (10, 41.0, 40)):  # cake tripled, bread steady
            t = d + dt.timedelta(days=1)
            c.execute(text("INSERT INTO forecast.forecasts (store_id, item_id, origin_date, target_date, horizon, "
                           "p10, p50, p90) VALUES (1, :i, :d, :t, 1, 1, :p, 99)"),
                      {"i": item, "d": d, "t": t, "p": p50})
            for lag in (357, 364, 371):            # the same weekday of three weeks last year
                c.execute(text("INSERT INTO marts.fct_daily_demand VALUES (1, :i, :ly, :u)"),
                          {"i": item, "ly": t - dt.timedelta(days=lag), "u": last_year})
    return d, ids


@pytest.fixture
def sendgrid():
    srv = SendGridServer()
    yield srv
    srv.close()


def _settings() -> Settings:
    return Settings(platform_base_url=BASE)


def _channel(srv, tmp_path, *, sandbox=False, key="SG.test") -> EmailChannel:
    return EmailChannel(api_key=key, base_url=srv.url, mail_from="replenish@retailer.test", outbox_dir=tmp_path,
                        sandbox=sandbox)


def _run(eng, d, channel, **kw):
    from replenish.digest import run_digest

    return run_digest(eng, d, f"run-{d}", settings=_settings(), channel=channel, cfg=FAST, **kw)


def _mail_to(srv, email: str) -> dict:
    return next(m for m in srv.mails if m["personalizations"][0]["to"][0]["email"] == email)


def _content(mail: dict, kind: str) -> str:
    return next(c["value"] for c in mail["content"] if c["type"] == kind)


def test_one_scoped_digest_per_buyer_with_the_sendgrid_payload(eng, day, sendgrid, tmp_path):
    d, ids = day
    summary = _run(eng, d, _channel(sendgrid, tmp_path))
    assert summary["sent"] == 2 and summary["new"] == 2 and summary["unscoped"] == ["nobody"]
    by_to = {m["personalizations"][0]["to"][0]["email"]: m for m in sendgrid.mails}
    assert set(by_to) == {"anna@retailer.test", "carl@retailer.test"}  # not inactive olga, not the admin
    req = sendgrid.requests[0]
    assert req["path"] == "/v3/mail/send" and req["headers"]["Authorization"] == "Bearer SG.test"

    anna, carl = by_to["anna@retailer.test"], by_to["carl@retailer.test"]
    key = anna["custom_args"]["idempotency_key"]
    assert key.startswith(f"digest-{d}-u") and anna["headers"]["X-Replenish-Key"] == key
    assert anna["from"]["email"] == "replenish@retailer.test" and anna["categories"] == ["buyer-digest"]
    assert [c["type"] for c in anna["content"]] == ["text/plain", "text/html"]
    assert anna["subject"] == f"Replenish {d}: 1 to review, 1 sent automatically, 3 exceptions"

    a_text, a_html = _content(anna, "text/plain"), _content(anna, "text/html")
    # Anna buys bread (supplier BREAD): her review order with cutoff, reasons and deep link; not Carl's.
    assert ids["bread_review"] in a_text and ids["cake_review"] not in a_text
    assert f"(suppliers: {BREAD}; categories: -)" in a_text
    assert f"Filiale Mitte (store 1), Backstube Nord (supplier {BREAD})," in a_text
    assert f'href="{BASE}/orders/{ids["bread_review"]}"' in a_html and f'href="{BASE}/queue"' in a_html
    assert "<td>Filiale Mitte (store 1)</td>" in a_html  # stores and suppliers by name where the marts have one
    assert "why: quantity far from the usual - " in a_text  # the queue's words, not the code
    assert f"cutoff {d + dt.timedelta(days=1):%a %Y-%m-%d}" in a_text
    assert re.search(r"cutoff \w{3} \d{4}-\d\d-\d\d \d\d:\d\d CES?T, value", a_text)   # in the zone it names
    assert "1 order(s) released, value 250.50 EUR; 1 transmitted" in a_text
    # blocked stores with the gate's reasons in words (a verdict without sentences: its checks in words)
    assert ("store 2 blocked by the quality gate (its orders wait for review): no stock snapshot taken on the day"
            in a_text)
    assert ("store 3 blocked by the quality gate (its orders wait for review): only 0 units sold on Monday, where "
            "the store usually sells about 310 on a Monday; 1 row of its POS exports rejected into quarantine "
            "(field quantity: <b>lots</b>)") in a_text
    assert "<li>Store 3 blocked by the quality gate (its orders wait for review):<ul><li>only 0 units" in a_html
    assert "(field quantity: &lt;b&gt;lots&lt;/b&gt;)</li>" in a_html and "<b>lots" not in a_html
    assert ids["cake_dead"] not in a_text and "Apfelkuchen" not in a_text
    # the delivery of d that never came, once; not the earlier one
    assert (f"never sent, cancelled once its delivery date was over (no delivery from it): {ids['bread_missed']}: "
            f"Filiale Mitte (store 1), Backstube Nord (supplier {BREAD}), delivery {d} - {BASE}/orders/") in a_text
    assert f'<li>Never sent, cancelled once its delivery date was over (no delivery from it): <a href="{BASE}/orders/' \
        in a_html
    assert ids["bread_missed_before"] not in a_text

    # Carl buys the cake category: the cake order in review, the dead letter, the forecast tripled vs last year.
    c_text = _content(carl, "text/plain")
    assert ids["cake_review"] in c_text and ids["bread_review"] not in c_text
    assert ids["cake_dead"] in c_text and "SendGrid HTTP 503 (logged in x.log)" in c_text and "/srv/" not in c_text
    assert "Apfelkuchen" in c_text and "P50 90.0 vs 30.0 (+200%)" in c_text and "Weizenbroetchen" not in c_text
    assert carl["subject"].endswith("4 exceptions")  # 2 blocked stores + dead letter + forecast


def test_orders_only_kept_in_the_outbox_folder_are_not_called_e_mailed(eng, sendgrid, tmp_path):
    """Sent as far as the outbox goes, an order mail written to disk for want of a SendGrid key has not reached its
    supplier: the digest says how many of the transmitted orders that is."""
    d = dt.date(2030, 1, 7) + dt.timedelta(days=40 * next(_DAYS))
    with eng.begin() as c:
        for store, ref in enumerate(("eml:/srv/outbox/PO-1.eml (no SendGrid API key: written to outbox_dir, not "
                                     "emailed)", "sendgrid:msg-1", "/srv/edi/PO-3.edi"), start=1):
            oid = _order(c, d, store, BREAD, 10, "sent", released_by="release:r1:rules-v1")
            c.execute(text("INSERT INTO orders.order_events (order_id, at, actor, event, to_value) "
                           "VALUES (:o, now(), 'dispatcher:r1', 'sent_ref', :r)"), {"o": oid, "r": ref})
    _run(eng, d, _channel(sendgrid, tmp_path))
    anna = _mail_to(sendgrid, "anna@retailer.test")
    said = ("3 transmitted (value 300.00 EUR); 1 of them was not e-mailed: no SendGrid key is configured, so its mail "
            "was kept in the outbox folder and its supplier does not have it")
    assert said in _content(anna, "text/plain") and said in _content(anna, "text/html")
    assert "/srv/" not in _content(anna, "text/plain")


def test_an_order_cancelled_a_night_late_is_told_in_the_next_digest_once(eng, sendgrid, tmp_path):
    """The night of its delivery date the dispatch did not run: the order was cancelled a night later, after that
    night's digest. It is told in the first digest after its cancellation, and not again."""
    d = dt.date(2030, 1, 7) + dt.timedelta(days=40 * next(_DAYS))
    with eng.begin() as c:
        late = _order(c, d - dt.timedelta(days=3), 1, BREAD, 10, "cancelled")       # delivery d - 1
        told = _order(c, d - dt.timedelta(days=3), 2, BREAD, 10, "cancelled")       # delivery d - 1, told then
        long_ago = _order(c, d - dt.timedelta(days=11), 1, BREAD, 10, "cancelled")  # delivery d - 9: its alert
        for o in (late, told, long_ago):
            _cancelled_after_delivery(c, o)
        _earlier_digest(c, d - dt.timedelta(days=1), "anna", {"missed_delivery_ids": [told]})
    _run(eng, d, _channel(sendgrid, tmp_path))
    body = _content(_mail_to(sendgrid, "anna@retailer.test"), "text/plain")
    assert (f"never sent, cancelled once its delivery date was over (no delivery from it): {late}: "
            f"Filiale Mitte (store 1), Backstube Nord (supplier {BREAD}), delivery {d - dt.timedelta(days=1)}") in body
    assert told not in body and long_ago not in body
    with eng.connect() as c:
        payload = c.execute(text("""SELECT o.payload FROM orders.digest_outbox o JOIN platform.users u USING (user_id)
                                    WHERE u.username = 'anna' AND o.business_date = :d"""), {"d": d}).scalar_one()
    assert payload["digest"]["missed_delivery_ids"] == [late]

    sendgrid.mails.clear()
    _run(eng, d + dt.timedelta(days=1), _channel(sendgrid, tmp_path))
    assert late not in _content(_mail_to(sendgrid, "anna@retailer.test"), "text/plain")


def test_exactly_once_on_rerun_and_after_a_crash(eng, day, sendgrid, tmp_path):
    d, _ = day
    ch = _channel(sendgrid, tmp_path)

    def crash(_key):
        raise SimulatedCrash()

    # The process dies after SendGrid accepted the first mail, before the outbox row was marked sent.
    with pytest.raises(SimulatedCrash):
        _run(eng, d, ch, hooks={"after_send": crash})
    assert len(sendgrid.mails) == 1
    retry = _run(eng, d, ch)          # the task's retry: the ledger marker stops a second mail
    assert retry["deduplicated"] == 1 and retry["sent"] == 1 and len(sendgrid.mails) == 2
    again = _run(eng, d, ch)          # the whole run repeated
    assert again["already_sent"] == 2 and again["sent"] == 0 and len(sendgrid.mails) == 2
    assert len({m["personalizations"][0]["to"][0]["email"] for m in sendgrid.mails}) == 2
    with eng.connect() as c:
        rows = c.execute(text("SELECT status, count(*) FROM orders.digest_outbox WHERE business_date = :d "
                              "GROUP BY status"), {"d": d}).all()
    assert dict(rows) == {"sent": 2}


def test_crash_before_the_outcome_resends_marked_with_one_alert(eng, day, sendgrid, tmp_path):
    d, _ = day
    ch = _channel(sendgrid, tmp_path)

    def crash(_key):
        raise SimulatedCrash()

    # SendGrid accepted the first mail; the process died before recording it: the ledger cannot know.
    with pytest.raises(SimulatedCrash):
        _run(eng, d, ch, hooks={"after_call": crash})
    retry = _run(eng, d, ch)
    assert retry["possible_duplicates"] == 1 and retry["sent"] == 2 and len(sendgrid.mails) == 3
    first, again = (m for m in sendgrid.mails
                    if m["custom_args"]["idempotency_key"] == sendgrid.mails[0]["custom_args"]["idempotency_key"])
    key = first["custom_args"]["idempotency_key"]
    assert first["headers"]["Message-ID"] == again["headers"]["Message-ID"] == f"<{key}@retailer.test>"
    assert "X-Replenish-Possible-Duplicate" not in first["headers"]
    assert again["headers"]["X-Replenish-Possible-Duplicate"] == key and again["custom_args"]["possible_duplicate"]
    assert again["subject"] == f"POSSIBLE DUPLICATE: {first['subject']}"
    assert _content(again, "text/plain").startswith("POSSIBLE DUPLICATE")
    assert _run(eng, d, ch)["sent"] == 0 and len(sendgrid.mails) == 3
    with eng.connect() as c:
        alerts = c.execute(text("SELECT message FROM orders.alerts WHERE kind = 'digest_possible_duplicate' "
                                "AND message LIKE :k"), {"k": f"digest {key} %"}).scalars().all()
    assert len(alerts) == 1 and "attempt 1 " in alerts[0] and "buyer" in alerts[0]


def test_sendgrid_down_retries_then_sends_once(eng, day, sendgrid, tmp_path):
    d, _ = day
    sendgrid.mode = "down"
    ch = _channel(sendgrid, tmp_path)
    first = _run(eng, d, ch)
    assert first["failed"] == 2 and first["sent"] == 0
    sendgrid.mode = "ok"
    second = _run(eng, d, ch)
    assert second["sent"] == 2 and second["refreshed"] == 2 and len(sendgrid.mails) == 2


def test_sandbox_mode_and_eml_without_api_key(eng, day, sendgrid, tmp_path):
    d, _ = day
    sandboxed = _run(eng, d, _channel(sendgrid, tmp_path, sandbox=True))
    assert sandboxed["sent"] == 2
    assert all(m["mail_settings"]["sandbox_mode"]["enable"] is True for m in sendgrid.mails)

    d2 = d + dt.timedelta(days=1)
    eml = EmailChannel(api_key=None, base_url="http://127.0.0.1:9", mail_from="r@x.test", outbox_dir=tmp_path)
    assert _run(eng, d2, eml)["sent"] == 2
    files = sorted(tmp_path.glob(f"digest-{d2}-u*.eml"))
    assert len(files) == 2 and "Content-Type: text/html" in files[0].read_text()
    assert _run(eng, d2, eml)["sent"] == 0 and len(list(tmp_path.glob(f"digest-{d2}-u*.eml"))) == 2


def test_bad_recipient_address_is_a_clear_error(eng, day, sendgrid, tmp_path):
    d, _ = day
    ch = _channel(sendgrid, tmp_path)
    with pytest.raises(Exception, match="no recipient"):
        ch.send_message(to=[], subject="s", text_body="t", html_body="h", key="k", category="buyer-digest")


def test_many_blocked_stores_are_listed_up_to_the_limit(eng, day, sendgrid, tmp_path):
    from replenish.digest.content import MAX_LISTED

    d, _ = day
    with eng.begin() as c:   # another day's sales file: every store of a large chain blocked
        for store in range(100, 100 + 2 * MAX_LISTED):
            c.execute(text("INSERT INTO ops.quality_gate (run_id, business_date, store_id, is_automation_blocked, "
                           "reasons, details) VALUES ('q' || :d, :d, :s, true, '{sales_outside_business_day}', "
                           ":why)"), {"d": d, "s": store, "why": [f"all 3 sales lines in the file for {d} were sold "
                                                                   "on another day: another day's sales file"]})
    _run(eng, d, _channel(sendgrid, tmp_path))
    anna = _mail_to(sendgrid, "anna@retailer.test")
    body = _content(anna, "text/plain")
    blocked = 2 + 2 * MAX_LISTED   # stores 2 and 3 of the fixture and the chain's
    assert body.count("blocked by the quality gate (its orders wait for review)") == MAX_LISTED
    assert f"... and {blocked - MAX_LISTED} more stores blocked by the quality gate" in body
    assert anna["subject"].endswith(f"{blocked + 1} exceptions")     # and the fixture's delivery never sent


def test_forecasts_are_compared_only_with_last_year_days_that_measured_demand(eng, sendgrid, tmp_path):
    """Zeros before a store opened or an item was listed, a stock-out, a closed store or a public holiday last
    year, or a public holiday on the day forecast, are no basis: on the demo's first night they made 65 of a
    buyer's 88 exceptions. (Each of those days alone: its weeks either side hold nothing to compare with.)"""
    d = dt.date(2030, 1, 7) + dt.timedelta(days=40 * next(_DAYS))
    ly = d - dt.timedelta(days=364)
    with eng.begin() as c:
        def forecast(store, h, p50):
            c.execute(text("INSERT INTO forecast.forecasts (store_id, item_id, origin_date, target_date, horizon, "
                           "p10, p50, p90) VALUES (:s, 20, :d, :t, :h, 1, :p, 99)"),
                      {"s": store, "d": d, "t": d + dt.timedelta(days=h), "h": h, "p": p50})

        def sold(store, item, day, units, stockout=False, holiday=False):
            c.execute(text("INSERT INTO marts.fct_daily_demand VALUES (:s, :i, :t, :u, :so, :ho)"),
                      {"s": store, "i": item, "t": day, "u": units, "so": stockout, "ho": holiday})

        for h in range(1, 7):
            forecast(1, h, 80.0)
            forecast(2, h, 80.0)
            sold(2, 20, ly + dt.timedelta(days=h), 0)      # store 2 lists the cake later: zeros, no sale before
        sold(1, 20, ly - dt.timedelta(days=10), 30)         # store 1 sold it in the weeks before
        sold(1, 20, ly + dt.timedelta(days=1), 0, stockout=True)
        sold(1, 20, ly + dt.timedelta(days=2), 0)           # store 1 closed that day: nothing sold at all
        for week in (-7, 0, 7):                              # ordinary days: the forecast is 8 x their level
            sold(1, 20, ly + dt.timedelta(days=3 + week), 10)
            sold(1, 10, ly + dt.timedelta(days=3 + week), 40)
        sold(1, 20, ly + dt.timedelta(days=4), 10, holiday=True)
        sold(1, 10, ly + dt.timedelta(days=4), 5)
        sold(1, 20, ly + dt.timedelta(days=5), 10)          # an ordinary day last year, a holiday this year
        c.execute(text("INSERT INTO marts.fct_demand_drivers VALUES (1, 20, :t, true)"),
                  {"t": d + dt.timedelta(days=5)})
    _run(eng, d, _channel(sendgrid, tmp_path))
    carl = _mail_to(sendgrid, "carl@retailer.test")
    flagged = [ln for ln in _content(carl, "text/plain").splitlines() if "far from last year" in ln]
    assert flagged == ["  - forecast far from last year: Filiale Mitte (store 1), Apfelkuchen on "
                       f"{d + dt.timedelta(days=3)}: P50 80.0 vs 10.0 (+700%)"]


def test_last_year_is_the_level_of_three_weeks_not_one_noisy_day(eng, sendgrid, tmp_path):
    """Against one day last year, a forecast of 50 beside a day that sold 10 is "+400 %"; the same weekday of the
    weeks either side sold 60 and 62: last year's level is 44 and the forecast is ordinary. A day with only one of
    the three measured is not compared at all."""
    d = dt.date(2030, 1, 7) + dt.timedelta(days=40 * next(_DAYS))
    ly = d - dt.timedelta(days=364)
    with eng.begin() as c:
        def sold(day, units, item=20):
            c.execute(text("INSERT INTO marts.fct_daily_demand VALUES (1, :i, :t, :u, false, false)"),
                      {"i": item, "t": day, "u": units})

        for h, p50 in ((1, 50.0), (2, 50.0), (3, 90.0)):
            c.execute(text("INSERT INTO forecast.forecasts (store_id, item_id, origin_date, target_date, horizon, "
                           "p10, p50, p90) VALUES (1, 20, :d, :t, :h, 1, :p, 99)"),
                      {"d": d, "t": d + dt.timedelta(days=h), "h": h, "p": p50})
        sold(ly - dt.timedelta(days=20), 30)
        for week, units in ((-7, 60), (0, 10), (7, 62)):   # day 1: a noisy day between two ordinary ones
            sold(ly + dt.timedelta(days=1 + week), units)
        sold(ly + dt.timedelta(days=2), 10)                 # day 2: one day only
        for week in (-7, 0, 7):                             # day 3: 90 against a level of 40
            sold(ly + dt.timedelta(days=3 + week), 40)
    _run(eng, d, _channel(sendgrid, tmp_path))
    carl = _mail_to(sendgrid, "carl@retailer.test")
    flagged = [ln for ln in _content(carl, "text/plain").splitlines() if "far from last year" in ln]
    assert flagged == ["  - forecast far from last year: Filiale Mitte (store 1), Apfelkuchen on "
                       f"{d + dt.timedelta(days=3)}: P50 90.0 vs 40.0 (+125%)"]


def test_an_item_selling_out_more_than_its_ordering_asks_is_an_exception_for_its_buyers(eng, sendgrid, tmp_path):
    """The accuracy verdict the night's forecast stage recorded (``replenish accuracy``) reaches the digest: bread
    sold out on half of the days the forecasts covered where its ordering asks for 30 %: an exception for Anna
    (bread), not for Carl (cake, on target); a model-wide reason would be everyone's."""
    import json

    d = dt.date(2030, 1, 7) + dt.timedelta(days=40 * next(_DAYS))
    overall = {"rows": 150, "censored_rows": 70, "wape_backtested_rows": 0.3, "backtest_wape": 0.1, "bias": 0.0,
               "coverage_low": 0.5, "coverage_high": 0.9}     # under 200 rows: the model is not judged yet
    service = [{"item_id": 10, "days_with_sales": 112, "stockout_days": 56, "stockout_share": 0.5, "asked": 0.3},
               {"item_id": 20, "days_with_sales": 112, "stockout_days": 6, "stockout_share": 0.0536, "asked": 0.05}]
    record = {"accuracy": {"status": "drift", "drift": ["..."], "overall": overall, "service_by_item": service}}
    with eng.begin() as c:
        c.execute(text("INSERT INTO ops.stage_results (run_id, business_date, stage, status, summary) "
                       "VALUES ('r', :d, 'forecast', 'success', CAST(:s AS jsonb))"),
                  {"d": d, "s": json.dumps(record)})
    _run(eng, d, _channel(sendgrid, tmp_path))
    anna = _mail_to(sendgrid, "anna@retailer.test")
    assert ("  - forecasts against what sold in the last 4 weeks (replenish accuracy): item 10 sold out on 50% "
            "of its days with sales, its ordering asks for 30%") in _content(anna, "text/plain").splitlines()
    assert "against what sold" in _content(anna, "text/html")
    assert f"    stock-outs and why, per item: {BASE}/service" in _content(anna, "text/plain").splitlines()
    assert f'<a href="{BASE}/service">' in _content(anna, "text/html")
    assert "against what sold" not in _content(_mail_to(sendgrid, "carl@retailer.test"), "text/plain")

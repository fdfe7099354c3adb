import datetime as dt
import email
import email.policy
import json
import uuid

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from support.sendgrid_local import SendGridServer
from support.supplier_api_local import SupplierApiServer

from replenish import migrations
from replenish.orders.channels import EdifactChannel, EmailChannel, SupplierApiChannel
from replenish.orders.dispatcher import DispatchConfig, SimulatedCrash, drain
from replenish.orders.order_tables import edit_line, load_order, upsert_proposals
from replenish.orders.outbox import approve
from replenish.orders.proposals import compute_proposals

D = dt.date(2030, 3, 4)


@pytest.fixture(scope="module")
def eng():
    from replenish.database import engine

    e = engine()
    migrations.upgrade(e)
    return e


def _proposal(store, p50=10.0, items=(1, 2)):
    lines = pd.DataFrame(
        [
            dict(
                store_id=store,
                item_id=i,
                supplier_id=1,
                order_date=D,
                as_of_date=D,
                delivery_date=D + dt.timedelta(days=1),
                next_delivery_date=D + dt.timedelta(days=2),
                on_hand_qty=0.0,
                pack_size=1,
                moq=0,
                max_order_qty=np.nan,
                service_level=0.5,
                shelf_life_days=30,
                unit_price=2.0,
                unit_cost=1.0,
                min_order_value=0.0,
            )
            for i in items
        ]
    )
    fc = pd.DataFrame(
        [
            dict(store_id=store, item_id=i, target_date=D + dt.timedelta(days=1), p10=p50 / 2, p50=p50, p90=p50 * 1.5)
            for i in items
        ]
    )
    r = compute_proposals(lines, fc, explain=False)
    return r.orders.assign(channel="api"), r.lines


def _new_store() -> int:
    """A store id of this test only (the database is shared by the whole run)."""
    return 100_000_000 + uuid.uuid4().int % 10**8


def _count(eng, sql, **p):
    with eng.connect() as c:
        return c.execute(text(sql), p).scalar()


def test_rerun_is_idempotent_and_keeps_edits(eng):
    store = _new_store()
    o, lines = _proposal(store)
    with eng.begin() as c:
        first = upsert_proposals(c, o, lines, run_id="r1")
    assert first["orders_created"] == 1
    oid = o.order_id[0]
    with eng.begin() as c:
        second = upsert_proposals(c, o, lines, run_id="r2")
    assert second == {"orders_created": 0, "orders_updated": 0, "lines_written": 0, "locked": 0}
    with eng.begin() as c:
        edit_line(c, oid, 1, 3, actor="alice", reason="shelf full")
    o2, l2 = _proposal(store, p50=20.0)
    with eng.begin() as c:
        third = upsert_proposals(c, o2, l2, run_id="r3")
    assert third["orders_created"] == 0 and third["orders_updated"] == 1
    with eng.connect() as c:
        head, lines = load_order(c, oid)
    by = {x["item_id"]: x for x in lines}
    assert by[1]["final_qty"] == 3 and by[1]["proposed_qty"] == 20  # edit kept, proposal recorded
    assert by[2]["final_qty"] == 20
    assert _count(eng, "SELECT count(*) FROM orders.purchase_orders WHERE store_id = :s", s=store) == 1
    assert "why 20" in by[2]["explanation"]["why"]
    # locked once sent (queued here): a re-run changes nothing
    with eng.begin() as c:
        approve(c, oid, actor="bob")
    o3, l3 = _proposal(store, p50=99.0)
    with eng.begin() as c:
        fourth = upsert_proposals(c, o3, l3, run_id="r4")
    assert fourth["locked"] == 1 and fourth["lines_written"] == 0
    with eng.begin() as c, pytest.raises(PermissionError):
        edit_line(c, oid, 1, 5, actor="alice")
    with eng.begin() as c, pytest.raises(Exception, match="append-only"):
        c.execute(text("DELETE FROM orders.order_events WHERE order_id = :o"), {"o": oid})


def _queued(eng, channel, api_url=None, email=None):
    store = _new_store()
    o, lines = _proposal(store)
    with eng.begin() as c:
        upsert_proposals(c, o.assign(channel=channel), lines, run_id="r1")
        oid = o.order_id[0]
        approve(c, oid, actor="bob")
        c.execute(
            text(
                "UPDATE orders.outbox SET payload = jsonb_set(payload, '{supplier}', CAST(:s AS jsonb)) "
                "WHERE order_id = :o"
            ),
            {"o": oid, "s": json.dumps({"api_url": api_url, "email": email})},
        )
    return oid


def _drain_only(eng, oid, channels, **kw):
    # only this test's message: push every other pending message out of reach for the call
    with eng.begin() as c:
        c.execute(
            text(
                "UPDATE orders.outbox SET next_attempt_at = now() + interval '1 day' "
                "WHERE order_id <> :o AND status IN ('pending', 'retry')"
            ),
            {"o": oid},
        )
    return drain(eng, channels, business_today=D, **kw)


def _crash(_key):
    raise SimulatedCrash()


def test_kill_after_the_sent_marker_sends_nothing_again(eng):
    srv = SupplierApiServer()
    try:
        oid = _queued(eng, "api", api_url=srv.url + "/orders")
        ch = {"api": SupplierApiChannel()}
        with pytest.raises(SimulatedCrash):  # the supplier's answer is recorded, the outbox row is not updated
            _drain_only(eng, oid, ch, hooks={"after_send": _crash})
        assert _count(eng, "SELECT status FROM orders.purchase_orders WHERE order_id = :o", o=oid) == "queued"
        res = _drain_only(eng, oid, ch)
        assert res["sent"] == 1 and res["deduplicated"] == 1 and res["possible_duplicates"] == 0
        assert len(srv.requests) == 1 and list(srv.orders) == [oid]
        assert _count(eng, "SELECT status FROM orders.purchase_orders WHERE order_id = :o", o=oid) == "sent"
        assert _drain_only(eng, oid, ch)["sent"] == 0  # nothing left
    finally:
        srv.close()


def test_kill_before_the_marker_resends_marked_with_the_same_key_and_one_alert(eng):
    srv = SupplierApiServer()
    try:
        oid = _queued(eng, "api", api_url=srv.url + "/orders")
        ch = {"api": SupplierApiChannel()}
        with pytest.raises(SimulatedCrash):  # the supplier took it; the process died before recording that
            _drain_only(eng, oid, ch, hooks={"after_call": _crash})
        res = _drain_only(eng, oid, ch)
        assert res["sent"] == 1 and res["possible_duplicates"] == 1
        first, second = srv.requests
        assert {r["headers"]["Idempotency-Key"] for r in srv.requests} == {oid} and list(srv.orders) == [oid]
        assert "X-Replenish-Possible-Duplicate" not in first["headers"]
        assert second["headers"]["X-Replenish-Possible-Duplicate"] == oid and first["body"] == second["body"]
        assert _count(eng, "SELECT count(*) FROM orders.alerts WHERE order_id = :o AND kind = 'api_possible_duplicate'",
                      o=oid) == 1
        assert _drain_only(eng, oid, ch)["sent"] == 0 and len(srv.requests) == 2
        assert _count(eng, "SELECT count(*) FROM orders.alerts WHERE order_id = :o", o=oid) == 1
    finally:
        srv.close()


def test_supplier_down_retries_then_dead_letter(eng):
    srv = SupplierApiServer(mode="down")
    try:
        oid = _queued(eng, "api", api_url=srv.url + "/orders")
        cfg = DispatchConfig(max_attempts=3, base_delay_s=0, jitter=0)
        results = [_drain_only(eng, oid, {"api": SupplierApiChannel()}, cfg=cfg) for _ in range(3)]
        assert [r["failed"] for r in results] == [1, 1, 0] and results[2]["dead"] == 1
        assert len(srv.requests) == 3
        with eng.connect() as c:
            st = c.execute(
                text("SELECT status, attempts, last_error FROM orders.outbox WHERE order_id = :o"), {"o": oid}
            ).one()
            assert st[0] == "dead_letter" and st[1] == 3 and "503" in st[2]
            assert (
                c.execute(
                    text("SELECT count(*) FROM orders.alerts WHERE order_id = :o AND kind = 'dead_letter'"), {"o": oid}
                ).scalar()
                == 1
            )
            assert (
                c.execute(text("SELECT status FROM orders.purchase_orders WHERE order_id = :o"), {"o": oid}).scalar()
                == "dead_letter"
            )
    finally:
        srv.close()


def test_past_delivery_is_never_sent(eng):
    srv = SupplierApiServer()
    try:
        oid = _queued(eng, "api", api_url=srv.url + "/orders")
        with eng.begin() as c:
            c.execute(
                text(
                    "UPDATE orders.outbox SET next_attempt_at = now() + interval '1 day' "
                    "WHERE order_id <> :o AND status IN ('pending', 'retry')"
                ),
                {"o": oid},
            )
        # the second run finds nothing to do and alerts nobody again
        runs = [drain(eng, {"api": SupplierApiChannel()}, business_today=D + dt.timedelta(days=5)) for _ in range(2)]
        assert [r["expired"] for r in runs] == [1, 0] and runs[0]["dead"] == 0 and srv.requests == []
        # cancelled with a reason, not a dead letter (whose Retry would send a delivery for a day that is over)
        assert _count(eng, "SELECT status FROM orders.purchase_orders WHERE order_id = :o", o=oid) == "cancelled"
        assert _count(eng, "SELECT status FROM orders.outbox WHERE order_id = :o", o=oid) == "expired"
        assert _count(eng, "SELECT to_value FROM orders.order_events WHERE order_id = :o AND event = 'cancel_reason'",
                      o=oid) == "delivery_date_passed"
        assert _count(eng, "SELECT count(*) FROM orders.alerts WHERE order_id = :o", o=oid) == 1
        assert _count(eng, "SELECT kind FROM orders.alerts WHERE order_id = :o", o=oid) == "delivery_date_passed"
    finally:
        srv.close()


def test_sendgrid_email_with_ledger_dedupe(eng, tmp_path):
    srv = SendGridServer()
    try:
        oid = _queued(eng, "email", email="orders@supplier.test")
        ch = {"email": EmailChannel(api_key="SG.test", base_url=srv.url, mail_from="r@x.test", outbox_dir=tmp_path)}
        with pytest.raises(SimulatedCrash):
            _drain_only(eng, oid, ch, hooks={"after_send": _crash})
        res = _drain_only(eng, oid, ch)
        assert (res["sent"], res["deduplicated"], res["failed"], res["dead"]) == (1, 1, 0, 0)
        assert len(srv.requests) == 1  # ledger marker prevented a second mail
        req = srv.requests[0]
        assert req["path"] == "/v3/mail/send" and req["headers"]["Authorization"] == "Bearer SG.test"
        body = req["body"]
        assert body["custom_args"] == {"order_id": oid} and body["headers"]["X-Replenish-Order-Id"] == oid
        assert body["headers"]["Message-ID"] == f"<{oid}@x.test>" and oid in body["subject"]
        assert "X-Replenish-Possible-Duplicate" not in body["headers"]
        assert (
            body["attachments"][0]["filename"] == f"{oid}.csv"
            and body["personalizations"][0]["to"][0]["email"] == "orders@supplier.test"
        )
        # a text-only mail client reads the lines too
        assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
        assert f"Purchase order {oid} for store" in body["content"][0]["value"]
        assert _lines_of(eng, oid) <= set(body["content"][0]["value"].splitlines())
    finally:
        srv.close()


def test_email_without_key_writes_eml(eng, tmp_path):
    oid = _queued(eng, "email", email="orders@supplier.test")
    ch = {"email": EmailChannel(api_key=None, base_url="http://127.0.0.1:9", mail_from="r@x.test", outbox_dir=tmp_path)}
    res = _drain_only(eng, oid, ch)
    # sent as far as the outbox goes; the count tells it apart, for the run's figures and `replenish status`
    assert res["sent"] == 1 and res["kept_on_disk"] == 1
    mail = email.message_from_bytes((tmp_path / f"{oid}.eml").read_bytes(), policy=email.policy.default)
    text_part = mail.get_body(preferencelist=("plain",)).get_content()
    assert f"Purchase order {oid} for store" in text_part and "SendGrid" not in text_part
    assert _lines_of(eng, oid) <= set(text_part.splitlines())


def _lines_of(eng, oid: str) -> set[str]:
    """The order's lines as its mail's text part lists them."""
    with eng.connect() as c:
        rows = c.execute(text("SELECT item_id, final_qty FROM orders.order_lines "
                              "WHERE order_id = :o AND final_qty > 0"), {"o": oid}).all()
    assert rows
    return {f"  item {i}: {int(q)}" for i, q in rows}


def test_edifact_file_and_existing_file_counts_as_sent(eng, tmp_path):
    oid = _queued(eng, "edifact")
    ch = {"edifact": EdifactChannel(tmp_path)}

    def crash(_):
        raise SimulatedCrash()

    with pytest.raises(SimulatedCrash):
        _drain_only(eng, oid, ch, hooks={"after_send": crash})
    f = tmp_path / f"{oid}.edi"
    first = f.read_text()
    assert f"BGM+220+{oid}+9'" in first and "UNH+" in first and "ORDERS:D:96A:UN" in first and "QTY+21:10:PCE" in first
    res = _drain_only(eng, oid, ch)
    assert res["sent"] == 1 and res["deduplicated"] == 1 and res["kept_on_disk"] == 0 and f.read_text() == first
    assert len(list(tmp_path.glob("*.edi"))) == 1


def _orders_under_cutoff_rules(eng, tmp_path, on_cutoff: dict[str, str | None]):
    """One proposed order per key, each of a store of its own whose rule sets ``on_cutoff`` to the key's value
    (None: the default rule). Returns the rules file and the order ids by key."""
    import yaml

    from replenish.orders.release import RULES_PATH

    stores = {k: _new_store() for k in on_cutoff}
    doc = yaml.safe_load(RULES_PATH.read_text())
    doc["overrides"] = [{"name": k, "match": {"store_id": stores[k]}, "set": {"on_cutoff": a}}
                        for k, a in on_cutoff.items() if a]
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(doc))
    ids = {}
    with eng.begin() as c:
        for k, store in stores.items():
            orders, lines = _proposal(store)
            upsert_proposals(c, orders, lines, run_id="t")
            ids[k] = orders["order_id"].iloc[0]
    return rules, ids


def test_cutoff_actions_send_skip_escalate_once(eng, tmp_path):
    from replenish.orders.cutoff import enforce_cutoffs

    rules, ids = _orders_under_cutoff_rules(eng, tmp_path, {a: a for a in ("send", "skip", "escalate")})
    # Earlier than any other test's cutoff in this shared database, so only these three orders are due.
    cutoff = dt.datetime(2000, 3, 4, 9, 30, tzinfo=dt.UTC)
    with eng.begin() as c:
        c.execute(
            text("UPDATE orders.purchase_orders SET cutoff_at = :t WHERE order_id = ANY(:ids)"),
            {"t": cutoff, "ids": list(ids.values())},
        )

    def status(oid):
        return _count(eng, "SELECT status FROM orders.purchase_orders WHERE order_id = :o", o=oid)

    before = enforce_cutoffs(eng, cutoff - dt.timedelta(minutes=1), rules_path=rules)
    assert all(status(o) == "proposed" for o in ids.values()) and before == {"send": 0, "skip": 0, "escalate": 0,
                                                                           "delivery_passed": 0}
    for _ in range(2):  # the second call (the next dispatch run) changes nothing and alerts nobody again
        enforce_cutoffs(eng, cutoff, rules_path=rules)
        assert status(ids["send"]) == "queued"
        assert status(ids["skip"]) == "cancelled"
        assert status(ids["escalate"]) == "in_review"
        assert _count(eng, "SELECT count(*) FROM orders.alerts WHERE order_id = :o", o=ids["escalate"]) == 1
        assert _count(eng, "SELECT count(*) FROM orders.outbox WHERE order_id = :o", o=ids["send"]) == 1
    reasons = _count(eng, "SELECT reasons FROM orders.purchase_orders WHERE order_id = :o", o=ids["escalate"])
    assert "cutoff_escalated" in reasons
    released_by = _count(eng, "SELECT released_by FROM orders.purchase_orders WHERE order_id = :o", o=ids["send"])
    assert released_by.startswith("cutoff:send")  # a cutoff send is not touchless


def test_orders_still_open_when_their_delivery_is_over_are_cancelled_once(eng, tmp_path):
    """An escalated order nobody acted on, and one the cutoff never saw (no cutoff), leave the review queue once
    their delivery date is over: cancelled with reason delivery_date_passed; the one never told raises one alert."""
    from replenish.orders.cutoff import enforce_cutoffs

    rules, ids = _orders_under_cutoff_rules(eng, tmp_path, {"escalated": "escalate", "never_due": None})
    # dates before any other test's orders in this shared database, so only these two are touched
    cutoff = dt.datetime(2000, 2, 4, 9, 30, tzinfo=dt.UTC)
    delivery = dt.date(2000, 2, 5)
    with eng.begin() as c:
        c.execute(text("UPDATE orders.purchase_orders SET delivery_date = :d, cutoff_at = :t WHERE order_id = :o"),
                  {"d": delivery, "t": cutoff, "o": ids["escalated"]})
        c.execute(text("UPDATE orders.purchase_orders SET delivery_date = :d, cutoff_at = NULL WHERE order_id = :o"),
                  {"d": delivery, "o": ids["never_due"]})

    def row(oid):
        with eng.connect() as c:
            return c.execute(text("SELECT status, reasons, (SELECT count(*) FROM orders.alerts a WHERE a.order_id ="
                                  " p.order_id) AS alerts FROM orders.purchase_orders p WHERE order_id = :o"),
                             {"o": oid}).mappings().one()

    on_the_day = enforce_cutoffs(eng, cutoff, rules_path=rules, business_today=cutoff.date())
    assert on_the_day["escalate"] == 1 and on_the_day["delivery_passed"] == 0
    assert row(ids["escalated"])["status"] == "in_review" and row(ids["never_due"])["status"] == "proposed"
    day_of_delivery = enforce_cutoffs(eng, cutoff + dt.timedelta(days=1), rules_path=rules, business_today=delivery)
    assert day_of_delivery["delivery_passed"] == 0
    for expected in (2, 0):      # the next dispatch run finds nothing more to do and tells nobody again
        night = dt.datetime(2000, 2, 6, 0, 5, tzinfo=dt.UTC)
        assert enforce_cutoffs(eng, night, rules_path=rules, business_today=night.date())["delivery_passed"] == expected
        for oid in ids.values():
            r = row(oid)
            assert r["status"] == "cancelled" and "delivery_date_passed" in r["reasons"] and r["alerts"] == 1
    with eng.connect() as c:
        kinds = c.execute(text("SELECT order_id, kind FROM orders.alerts WHERE order_id = ANY(:i)"),
                          {"i": list(ids.values())}).all()
        reasons = c.execute(text("SELECT to_value FROM orders.order_events WHERE order_id = :o AND event ="
                                 " 'cancel_reason'"), {"o": ids["never_due"]}).scalars().all()
    assert sorted(kinds) == sorted([(ids["escalated"], "cutoff_escalation"),
                                    (ids["never_due"], "delivery_date_passed")])
    assert reasons == ["delivery_date_passed"]


def test_an_order_mail_names_the_store_and_items_and_escapes_them(tmp_path):
    """A supplier reads 'Filiale Mitte (store 5)' and 'item 101 Weizenbroetchen', in the text and the HTML part;
    names from the masters are escaped in the HTML."""
    payload = {"order_id": "PO-NAMES-1", "store_id": 5, "store_name": "Filiale <b>Mitte</b>", "supplier_id": 1,
               "order_date": "2019-05-01", "delivery_date": "2019-05-02", "version": 1,
               "supplier": {"email": "orders@supplier.test"},
               "lines": [{"item_id": 101, "qty": 130, "item_name": "Weizenbroetchen"},
                         {"item_id": 102, "qty": 4, "item_name": None}]}
    ch = EmailChannel(api_key=None, base_url="http://127.0.0.1:9", mail_from="r@x.test", outbox_dir=tmp_path)
    ch.send(payload, "PO-NAMES-1")
    mail = email.message_from_bytes((tmp_path / "PO-NAMES-1.eml").read_bytes(), policy=email.policy.default)
    text_part = mail.get_body(preferencelist=("plain",)).get_content()
    html_part = mail.get_body(preferencelist=("html",)).get_content()
    assert "for Filiale <b>Mitte</b> (store 5), delivery 2019-05-02" in text_part
    assert "  item 101 Weizenbroetchen: 130" in text_part and "  item 102: 4" in text_part
    assert "Filiale &lt;b&gt;Mitte&lt;/b&gt; (store 5)" in html_part and "<b>Mitte" not in html_part
    assert "<td>Weizenbroetchen</td>" in html_part

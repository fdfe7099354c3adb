"""Fault injection: the dispatcher killed at every step of every channel, and what the receivers got.

Kill points (``KILL_POINTS``): the steps of ``replenish.orders.sent_ledger.transmit`` (``STEPS``: before claim,
after claim, before the call, after the provider accepted, after the sent marker, before commit, after
commit) plus ``during_call`` (the receiver has the message, the call has not returned). A kill is a
``SimulatedCrash`` (a BaseException: nothing catches it, every open transaction rolls back) and, in
``test_sigkill``, a real dispatcher process SIGKILLed at a step (by its own hook, or by the SendGrid or
supplier server while the request is in flight), which proves the committed-intent design without any
in-process cleanup.

Channels: e-mail through a local SendGrid-protocol server, e-mail without an API key (.eml files), the
supplier API through a local server honouring ``Idempotency-Key``, EDIFACT files. A file channel is run
twice: with the file left in place, and with a transfer agent that picks files up before the next run
(then the file no longer proves delivery and only the ledger knows). Digest mails go through the same
mechanism and the same kill points.

Counted per order, after the crashed run and a recovery run (and a third run that must change nothing):
0 silent duplicates (at most one copy not marked "possible duplicate"), 1 alert per possible duplicate
(alerts == marked copies), 0 lost orders (at least one copy; the order is 'sent').
"""

from __future__ import annotations

import datetime as dt
import email
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from support.sendgrid_local import SendGridServer
from support.supplier_api_local import SupplierApiServer

from replenish.orders.channels import EdifactChannel, EmailChannel, SupplierApiChannel
from replenish.orders.dispatcher import DispatchConfig, SimulatedCrash, drain
from replenish.orders.outbox import approve, requeue
from replenish.orders.sent_ledger import STEPS

D = dt.date(2030, 3, 4)
KILL_POINTS = (*STEPS[:3], "during_call", *STEPS[3:])
CHANNELS = ("sendgrid", "eml", "api", "edifact")
FILE_CHANNELS = ("eml", "edifact")
FAST = DispatchConfig(max_attempts=5, base_delay_s=0, jitter=0)
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def eng():
    from replenish import migrations
    from replenish.database import engine

    e = engine()
    migrations.upgrade(e)
    return e


def _q(eng, sql: str, **p: Any) -> Any:
    with eng.connect() as c:
        return c.execute(text(sql), p).scalar()


def _alerts(eng, oid: str, kind_like: str = "%") -> int:
    return _q(eng, "SELECT count(*) FROM orders.alerts WHERE order_id = :o AND kind LIKE :k", o=oid, k=kind_like)


def _queued(eng, channel: str, *, api_url: str | None = None, email_to: str | None = "orders@supplier.test") -> str:
    """An approved order with two lines, its message queued for ``channel``."""
    oid = "PO" + uuid.uuid4().hex[:20].upper()
    with eng.begin() as c:
        c.execute(
            text("""INSERT INTO orders.purchase_orders (order_id, store_id, supplier_id, delivery_date, order_date,
                        status, channel) VALUES (:o, :s, :p, :dd, :d, 'proposed', :ch)"""),
            # a store of this order only, at a supplier no master knows (its contact is set below)
            {"o": oid, "s": 300_000_000 + int(oid[-8:], 16) % 10**8, "p": 999_999_001, "dd": D + dt.timedelta(days=1),
             "d": D, "ch": channel},
        )
        c.execute(text("INSERT INTO orders.order_lines (order_id, item_id, proposed_qty, final_qty) "
                       "VALUES (:o, 1, 10, 10), (:o, 2, 4, 4)"), {"o": oid})
        approve(c, oid, actor="buyer:test")
        c.execute(
            text("UPDATE orders.outbox SET payload = jsonb_set(payload, '{supplier}', CAST(:s AS jsonb)) "
                 "WHERE order_id = :o"),
            {"o": oid, "s": json.dumps({"api_url": api_url, "email": email_to})},
        )
    return oid


class World:
    """The four channels and their receivers; ``copies(oid)``: per copy received, marked as possible duplicate?"""

    def __init__(self, tmp: Path):
        self.sendgrid, self.api = SendGridServer(), SupplierApiServer()
        self.eml_dir, self.edi_dir = tmp / "eml", tmp / "edi"
        self.picked: dict[str, list[str]] = {"eml": [], "edifact": []}  # what the transfer agent took away

    def close(self) -> None:
        self.sendgrid.close()
        self.api.close()

    def channel(self, kind: str):
        return {
            "sendgrid": lambda: EmailChannel(api_key="SG.test", base_url=self.sendgrid.url, mail_from="r@x.test",
                                             outbox_dir=self.eml_dir),
            "eml": lambda: EmailChannel(api_key=None, base_url="http://127.0.0.1:9", mail_from="r@x.test",
                                        outbox_dir=self.eml_dir),
            "api": SupplierApiChannel,
            "edifact": lambda: EdifactChannel(self.edi_dir),
        }[kind]()

    def queue(self, eng, kind: str) -> str:
        channel = {"sendgrid": "email", "eml": "email"}.get(kind, kind)
        return _queued(eng, channel, api_url=self.api.url + "/orders")

    def folder(self, kind: str) -> tuple[Path, str]:
        return (self.eml_dir, ".eml") if kind == "eml" else (self.edi_dir, ".edi")

    def pick_up(self, kind: str) -> None:
        """The supplier's transfer agent takes every file away."""
        if kind in FILE_CHANNELS:
            folder, suffix = self.folder(kind)
            for f in sorted(folder.glob(f"*{suffix}")):
                self.picked[kind].append(f.read_text())
                f.unlink()

    def copies(self, kind: str, oid: str) -> list[bool]:
        if kind == "sendgrid":
            mails = [m for m in self.sendgrid.mails if (m.get("custom_args") or {}).get("order_id") == oid]
            for m in mails:  # the subject and the header agree, and the Message-ID is the order's
                marked = "X-Replenish-Possible-Duplicate" in m["headers"]
                assert m["subject"].startswith(f"POSSIBLE DUPLICATE of order {oid}") == marked
                assert m["headers"]["Message-ID"] == f"<{oid}@x.test>" and m["headers"]["X-Replenish-Order-Id"] == oid
            return ["X-Replenish-Possible-Duplicate" in m["headers"] for m in mails]
        if kind == "api":
            reqs = [r for r in self.api.requests if r["headers"].get("Idempotency-Key") == oid]
            assert len({json.dumps(r["body"], sort_keys=True) for r in reqs}) <= 1  # a resend is the same request
            assert list(self.api.orders).count(oid) == (1 if reqs else 0)  # the supplier deduplicated on the key
            return [r["headers"].get("X-Replenish-Possible-Duplicate") == oid for r in reqs]
        folder, suffix = self.folder(kind)
        texts = list(self.picked[kind])
        if (folder / f"{oid}{suffix}").exists():
            texts.append((folder / f"{oid}{suffix}").read_text())
        if kind == "edifact":
            mine = [t for t in texts if f"BGM+220+{oid}+" in t]
            return [f"BGM+220+{oid}+7'" in t for t in mine]
        msgs = [email.message_from_string(t) for t in texts]
        mine = [m for m in msgs if m["X-Replenish-Order-Id"] == oid]
        assert all(m["Message-ID"] == f"<{oid}@x.test>" for m in mine)
        return [m["X-Replenish-Possible-Duplicate"] == oid for m in mine]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("faults"))
    yield w
    w.close()


def _crash(_key: str | None) -> None:
    raise SimulatedCrash()


class _DiesInCall:
    """The receiver takes the message, then the process dies before the call returns."""

    def __init__(self, inner: Any):
        self.inner, self.name = inner, inner.name

    def already_sent(self, key: str) -> str | None:
        return self.inner.already_sent(key)

    def send(self, payload: dict, key: str, *, possible_duplicate: bool = False) -> str:
        self.inner.send(payload, key, possible_duplicate=possible_duplicate)
        raise SimulatedCrash("killed while the call was in flight")


def _channels(world: World, kind: str, *, dies_in_call: bool = False) -> dict:
    ch = world.channel(kind)
    return {ch.name: _DiesInCall(ch) if dies_in_call else ch}


def _drain(eng, world: World, kind: str, oid: str, **kw: Any) -> dict:
    dies = kw.pop("dies_in_call", False)
    return drain(eng, _channels(world, kind, dies_in_call=dies), business_today=D, order_ids=[oid], run_id="faults",
                 cfg=FAST, **kw)


def expected(kind: str, point: str, picked_up: bool) -> list[bool]:
    """Copies the receiver should hold after a kill at ``point`` and one recovery run (True: marked)."""
    if point in ("before_claim", "after_claim"):  # nothing committed: sent normally
        return [False]
    if point == "before_call":  # intent committed, never sent: the resend cannot know that
        return [True]
    if point in ("during_call", "after_call"):  # delivered, not recorded: the ambiguous window
        return [False] if kind in FILE_CHANNELS and not picked_up else [False, True]
    return [False]  # the sent marker was committed: deduplicated


def _check(eng, world: World, kind: str, oid: str, want: list[bool]) -> None:
    got = world.copies(kind, oid)
    assert got == want
    assert got, "lost order"
    assert got.count(False) <= 1, "silent duplicate"
    assert _alerts(eng, oid, "%_possible_duplicate") == got.count(True), "one alert per possible duplicate"
    assert _alerts(eng, oid) == got.count(True)  # and no other alert
    assert _q(eng, "SELECT status FROM orders.purchase_orders WHERE order_id = :o", o=oid) == "sent"
    assert _q(eng, "SELECT status FROM orders.outbox WHERE order_id = :o", o=oid) == "sent"
    marked_event = _q(eng, "SELECT count(*) FROM orders.order_events WHERE order_id = :o "
                           "AND event = 'possible_duplicate'", o=oid)
    assert marked_event == (1 if got[-1] else 0)


CASES = [
    pytest.param(kind, point, picked, id=f"{kind}-{point}" + ("-picked-up" if picked else ""))
    for kind in CHANNELS for point in KILL_POINTS for picked in ((False, True) if kind in FILE_CHANNELS else (False,))
]


@pytest.mark.parametrize(("kind", "point", "picked_up"), CASES)
def test_kill_at_every_step_of_every_channel(eng, world, kind, point, picked_up):
    oid = world.queue(eng, kind)
    hooks = {} if point == "during_call" else {point: _crash}
    with pytest.raises(SimulatedCrash):
        _drain(eng, world, kind, oid, hooks=hooks, dies_in_call=point == "during_call")
    if picked_up:
        world.pick_up(kind)
    _drain(eng, world, kind, oid)
    if picked_up:
        world.pick_up(kind)
    assert _drain(eng, world, kind, oid)["sent"] == 0  # a later run changes nothing, alerts nobody
    _check(eng, world, kind, oid, expected(kind, point, picked_up))


def test_killed_twice_in_the_window_two_marked_resends_two_alerts(eng, world):
    oid = world.queue(eng, "sendgrid")
    for _ in range(2):
        with pytest.raises(SimulatedCrash):
            _drain(eng, world, "sendgrid", oid, hooks={"after_call": _crash})
    res = _drain(eng, world, "sendgrid", oid)
    assert res["sent"] == 1 and res["possible_duplicates"] == 1
    _check(eng, world, "sendgrid", oid, [False, True, True])
    # each alert names the one attempt it is about
    msgs = [m for (m,) in _rows(eng, "SELECT message FROM orders.alerts WHERE order_id = :o ORDER BY alert_id", o=oid)]
    assert "attempt 1 " in msgs[0] and "sending attempt 2 " in msgs[0]
    assert "attempt 2 " in msgs[1] and "attempt 1 " not in msgs[1] and "sending attempt 3 " in msgs[1]


def _rows(eng, sql: str, **p: Any) -> list[Any]:
    with eng.connect() as c:
        return list(c.execute(text(sql), p).all())


@pytest.mark.parametrize("answer", ["drop", "502"])
@pytest.mark.parametrize("kind", ["sendgrid", "api"])
def test_lost_answer_is_a_possible_duplicate_not_a_plain_failure(eng, world, kind, answer):
    """The receiver took the message and the connection broke before its answer (or a gateway answered 502):
    retried, marked, one alert."""
    oid = world.queue(eng, kind)
    server = world.sendgrid if kind == "sendgrid" else world.api
    server.mode = answer
    try:
        first = _drain(eng, world, kind, oid)
    finally:
        server.mode = "ok"
    assert first["failed"] == 1 and first["sent"] == 0
    outcome = _q(eng, "SELECT outcome FROM orders.send_attempts WHERE order_id = :o AND attempt = 1", o=oid)
    assert outcome == "unknown"
    assert _drain(eng, world, kind, oid)["possible_duplicates"] == 1
    _check(eng, world, kind, oid, [False, True])


def test_refused_request_is_resent_unmarked(eng, world):
    """A 503 is the server's word that it did not take the mail: the retry is no duplicate and alerts nobody."""
    oid = world.queue(eng, "sendgrid")
    world.sendgrid.mode = "down"
    try:
        assert _drain(eng, world, "sendgrid", oid)["failed"] == 1
    finally:
        world.sendgrid.mode = "ok"
    assert _drain(eng, world, "sendgrid", oid)["possible_duplicates"] == 0
    _check(eng, world, "sendgrid", oid, [False])


def test_a_message_that_kills_its_sender_every_time_is_dead_lettered(eng, world):
    """Crash loop: after max_attempts intents without an outcome the order is not sent again until a person
    retries; every uncertain attempt is still alerted once, when a resend happens."""
    oid = world.queue(eng, "sendgrid")
    cfg = DispatchConfig(max_attempts=2, base_delay_s=0, jitter=0)
    for _ in range(2):
        with pytest.raises(SimulatedCrash):
            drain(eng, _channels(world, "sendgrid"), business_today=D, order_ids=[oid], cfg=cfg,
                  hooks={"before_call": _crash})
    res = drain(eng, _channels(world, "sendgrid"), business_today=D, order_ids=[oid], cfg=cfg)
    assert res["dead"] == 1 and world.copies("sendgrid", oid) == []
    assert _q(eng, "SELECT status FROM orders.purchase_orders WHERE order_id = :o", o=oid) == "dead_letter"
    assert _alerts(eng, oid, "dead_letter") == 1 and _alerts(eng, oid, "%_possible_duplicate") == 1
    dead_msg = _q(eng, "SELECT message FROM orders.alerts WHERE order_id = :o AND kind = 'dead_letter'", o=oid)
    assert "stopped 2 times" in dead_msg and "attempt 2 " in dead_msg
    with eng.begin() as c:  # a person presses Retry
        requeue(c, oid, actor="buyer:test")
    assert drain(eng, _channels(world, "sendgrid"), business_today=D, order_ids=[oid], cfg=cfg)["sent"] == 1
    assert world.copies("sendgrid", oid) == [True]
    assert _alerts(eng, oid, "%_possible_duplicate") == 2  # attempt 1, then attempt 2: each once


def test_two_dispatchers_never_send_the_same_order_at_once(eng, world):
    oid = world.queue(eng, "sendgrid")
    inside, release = threading.Event(), threading.Event()

    def hold(_mail: dict) -> None:
        inside.set()
        release.wait(120)

    world.sendgrid.on_accept = hold
    results: list[dict] = []
    first = threading.Thread(target=lambda: results.append(_drain(eng, world, "sendgrid", oid)))
    try:
        first.start()
        assert inside.wait(120)
        second = _drain(eng, world, "sendgrid", oid)  # the first one is inside the SendGrid call
        assert second["busy"] == 1 and second["sent"] == 0
    finally:
        release.set()
        first.join(120)
        world.sendgrid.on_accept = None
    assert results[0]["sent"] == 1
    _check(eng, world, "sendgrid", oid, [False])


# -- digests: the same mechanism ----------------------------------------------------------------------------

_DIGEST_DAY = iter(range(10_000))
_DIGEST_BASE = dt.date(2101, 1, 1) + dt.timedelta(days=uuid.uuid4().int % 20_000)  # this session's own dates


def _digest(eng) -> tuple[dt.date, str]:
    """A queued digest for a fresh business date and a user id no other run used."""
    from replenish.digest.outbox import digest_key, enqueue

    day, user = _DIGEST_BASE + dt.timedelta(days=next(_DIGEST_DAY)), uuid.uuid4().int % 10**12
    with eng.begin() as c:
        enqueue(c, day, user, "anna@retailer.test", "Replenish digest", {"text": "t", "html": "<p>h</p>"}, "r")
    return day, digest_key(day, user)


@pytest.mark.parametrize("point", KILL_POINTS)
@pytest.mark.parametrize("kind", ["sendgrid", "eml"])
def test_digest_mail_killed_at_every_step(eng, world, kind, point):
    from replenish.digest.outbox import drain_digests

    day, key = _digest(eng)
    ch = world.channel(kind)

    class Dies(EmailChannel):
        def send_message(self, **kw: Any) -> str:
            ch.send_message(**kw)
            raise SimulatedCrash("killed while the call was in flight")

    crashing = Dies(api_key=ch.api_key, base_url=ch.base_url, mail_from=ch.mail_from, outbox_dir=ch.outbox_dir)
    with pytest.raises(SimulatedCrash):
        drain_digests(eng, crashing if point == "during_call" else ch, day, cfg=FAST,
                      hooks={} if point == "during_call" else {point: _crash})
    drain_digests(eng, ch, day, cfg=FAST)
    assert drain_digests(eng, ch, day, cfg=FAST)["sent"] == 0
    if kind == "sendgrid":
        mails = [m for m in world.sendgrid.mails if (m.get("custom_args") or {}).get("idempotency_key") == key]
        got = ["X-Replenish-Possible-Duplicate" in m["headers"] for m in mails]
        assert all(m["subject"].startswith("POSSIBLE DUPLICATE") == d for m, d in zip(mails, got, strict=True))
    else:
        f = world.eml_dir / f"{key}.eml"
        got = [email.message_from_string(f.read_text())["X-Replenish-Possible-Duplicate"] == key] if f.exists() else []
    assert got == expected("sendgrid" if kind == "sendgrid" else "eml", point, picked_up=False)
    alerts = _q(eng, "SELECT count(*) FROM orders.alerts WHERE kind = 'digest_possible_duplicate' "
                     "AND message LIKE :k", k=f"digest {key} %")
    assert alerts == got.count(True)
    assert _q(eng, "SELECT status FROM orders.digest_outbox WHERE idempotency_key = :k", k=key) == "sent"


# -- real kills ----------------------------------------------------------------------------------------------

SIGKILLS = [
    ("sendgrid", "before_call"),
    ("sendgrid", "during_call"),  # the SendGrid server kills the dispatcher before it answers
    ("sendgrid", "after_call"),
    ("sendgrid", "before_commit"),
    ("api", "during_call"),       # the supplier server kills it before it answers
    ("edifact", "after_call"),
]


@pytest.mark.parametrize(("kind", "point"), SIGKILLS)
def test_sigkill(eng, world, kind, point):
    """A real dispatcher process SIGKILLed at a step: no exception handler, no rollback, no lock release but
    the server's; the next run recovers from what was committed."""
    oid = world.queue(eng, kind)
    app = f"dispatch-victim-{uuid.uuid4().hex[:8]}"
    spec = {"order_id": oid, "business_today": D.isoformat(), "step": "" if point == "during_call" else point,
            "sendgrid_url": world.sendgrid.url if kind == "sendgrid" else None,
            "out_dir": str(world.eml_dir if kind == "sendgrid" else world.edi_dir)}
    env = {**os.environ, "PGAPPNAME": app}
    victim: list[subprocess.Popen] = []

    def kill(_req: dict) -> None:
        os.kill(victim[0].pid, signal.SIGKILL)

    if point == "during_call" and kind == "sendgrid":
        world.sendgrid.on_accept = kill
    elif point == "during_call":
        world.api.on_request = kill
    proc = subprocess.Popen([sys.executable, str(HERE / "support" / "dispatch_victim.py"), json.dumps(spec)], env=env)
    victim.append(proc)
    try:
        assert proc.wait(timeout=300) == -signal.SIGKILL
    finally:
        world.sendgrid.on_accept = None
        world.api.on_request = None
        if proc.poll() is None:
            proc.kill()
    _wait_until_gone(eng, app)  # PostgreSQL has ended the killed process's sessions (and rolled them back)
    _drain(eng, world, kind, oid)
    assert _drain(eng, world, kind, oid)["sent"] == 0
    _check(eng, world, kind, oid, expected(kind, point, picked_up=False))


def _wait_until_gone(eng, app: str) -> None:
    for _ in range(600):
        if _q(eng, "SELECT count(*) FROM pg_stat_activity WHERE application_name = :a", a=app) == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the killed dispatcher's sessions ({app}) are still open")


def test_an_upgrade_carries_the_old_sent_ledger_over(tmp_path):
    """A database from before orders.send_attempts: a 'sent' marker stays a sent marker (no mail again), a
    'sending' claim alone stays an attempt without outcome (the resend is marked, with one alert)."""
    from sqlalchemy import create_engine

    from replenish import migrations
    from replenish.database import database_url, sqlalchemy_url

    name = "replenish_test_ledger_upgrade"
    base = database_url()
    admin = create_engine(sqlalchemy_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    e = create_engine(sqlalchemy_url(base.rsplit("/", 1)[0] + "/" + name))
    try:
        with e.begin() as c:  # what the previous version left behind
            c.exec_driver_sql("""CREATE SCHEMA orders;
                CREATE TABLE orders.sent_ledger (idempotency_key text NOT NULL, channel text NOT NULL,
                    state text NOT NULL, external_ref text, at timestamptz NOT NULL DEFAULT clock_timestamp(),
                    PRIMARY KEY (idempotency_key, channel, state));
                INSERT INTO orders.sent_ledger VALUES ('PO1', 'email', 'sending', NULL, now()),
                    ('PO1', 'email', 'sent', 'sendgrid:abc', now()), ('PO2', 'email', 'sending', NULL, now()),
                    ('digest-2030-01-01-u1', 'digest', 'sending', NULL, now()),
                    ('digest-2030-01-01-u1', 'digest', 'sent', 'eml:x', now())""")
        for _ in range(2):  # the upgrade runs again: carried over once
            migrations.upgrade(e)
        with e.connect() as c:
            rows = c.execute(text("SELECT idempotency_key, channel, attempt, outcome, external_ref "
                                  "FROM orders.send_attempts")).all()
        assert sorted(tuple(r) for r in rows) == [("PO1", "email", 1, "accepted", "sendgrid:abc"),
                                                  ("PO2", "email", 1, None, None),
                                                  ("digest-2030-01-01-u1", "digest", 1, "accepted", "eml:x")]
    finally:
        e.dispose()

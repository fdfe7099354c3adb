"""Hostile strings, and a world that stores them everywhere the platform's pages show data.

Used by test_platform_injection.py (rendered HTML, no browser) and test_platform_injection_browser.py
(real Chromium). The world lives in its own database (``replenish_inject_test`` on the test server), with the
marts the pages read names from (dim_stores, dim_suppliers, dim_items, fct_daily_demand) created by hand
the way the MMS master exports would have filled them, so hostile names never reach other tests.

Every payload carries an element or attribute whose id starts with ``inj``: if any of them ever turns into
markup, ``injected()`` (or the DOM check of the browser test) finds it.

Store, supplier and item ids are integers (replenish.ids), so hostile text cannot be one: it goes where text
still enters - the names the marts give those ids, order ids, reasons, events, edit reasons, explanations, user
names - and what a person types as an id (path segments, form fields, query parameters) must be refused.
"""

from __future__ import annotations

import datetime as dt
import json
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

DATABASE = "replenish_inject_test"

# The finding first: it made the admin's browser POST /logout with the session's CSRF token.
LOGOUT = '<b id="inj-logout" hx-post="/logout" hx-trigger="load">x</b>'
CORPUS: tuple[str, ...] = (
    LOGOUT,
    '"><img id="inj-img" src="/inj-img" onerror="alert(1)">',
    "'><svg id=inj-svg onload=alert(2)>",
    '<script id="inj-script">alert(3)</script>',
    '</textarea></title></select><div id="inj-div" hx-get="/logout" hx-trigger="load">',
    '<a id="inj-a" href="javascript:alert(4)">a</a>',
    '<form id="inj-form" action="/logout" method="post"><button>go</button></form>',
    '<div id="inj-on" hx-on::load="alert(5)" hx-get="/inj-on" hx-trigger="load">',
    '<meta id="inj-meta" http-equiv="refresh" content="0;url=/logout">',
    '{{ 7*7 }}${7*7}<i id="inj-ssti">',
    '&lt;b id="inj-pre"&gt; &amp; &#x3C;i id="inj-ent"&#x3E;',
    '<iframe id="inj-iframe" srcdoc="&lt;script&gt;alert(6)&lt;/script&gt;"></iframe>',
    '<base id="inj-base" href="https://evil.example/">',
    '<style id="inj-style">body{display:none}</style>',
    "<img id=inj-x src=x onerror=alert`7`>",
)
SHORT10 = "<i id=inj>"  # delivery_date takes at most 10 characters
SHORT20 = "<b id=inj>x</b>"  # status: 20
USERNAME = '<b id="inj-user" hx-post="/logout">u</b>'
STORE_NAME = '"><b id="inj-store">'  # breaks out of an attribute: the name of the hostile order's store
SUPPLIER_NAME = "<i id='inj-sup'>'"
ITEM_NAME = '<svg id="inj-item" onload=alert(8)>'  # the hostile item's name (its sales chart's label)
ORDER_ID = "x-<b id=\"inj-oid\">&'#?% 1"  # order ids are text: still hostile
DOTS = "../../logout"  # in a form action unencoded, the browser would post to /logout
HOSTILE_ITEM, DOTS_ITEM = 990_004, 990_005  # the hostile order's items beside seed_demo's I1 (named as above)

ALLOWED_HX = {"hx-boost", "hx-headers", "hx-disable"}


def fits(limit: int) -> list[str]:
    return [p for p in CORPUS if len(p) <= limit]


def query_cases() -> list[tuple[str, dict[str, str]]]:
    """Every query parameter of every page, with every payload that fits its length limit."""
    cases: list[tuple[str, dict[str, str]]] = []
    for p in [*fits(64), SHORT20, SHORT10]:
        for name, limit in (("status", 20), ("delivery_date", 10), ("store_id", 64), ("supplier_id", 64),
                            ("reason", 64), ("done", 1000)):
            if len(p) <= limit:
                cases.append(("/queue", {name: p}))
        cases.append(("/orders/" + quote(ORDER_ID, safe=""), {"done": p}))
    for p in CORPUS:
        cases.append(("/login", {"next": p}))
        cases.append(("/login", {"next": "/" + p}))
        cases.append(("/login", {"done": p}))
    return cases


def fresh_database() -> Engine:
    """Drop and create the world's own database; its engine."""
    from replenish.database import sqlalchemy_url
    from support.databases import scratch_database

    return create_engine(sqlalchemy_url(scratch_database(DATABASE)), future=True)


MARTS = """
CREATE SCHEMA IF NOT EXISTS marts;
CREATE TABLE marts.dim_stores (store_id integer PRIMARY KEY, store_name text NOT NULL);
CREATE TABLE marts.dim_suppliers (supplier_id integer PRIMARY KEY, supplier_name text NOT NULL, email text);
CREATE TABLE marts.dim_items (item_id integer, item_name text NOT NULL, category text, unit_cost numeric,
    snapshot_date date, PRIMARY KEY (item_id, snapshot_date));
CREATE TABLE marts.fct_daily_demand (store_id integer, item_id integer, demand_date date, units_sold numeric);
"""


def seed_hostile(engine: Engine) -> dict[str, Any]:
    """seed_demo's small world with hostile names, plus one order whose id, store, supplier and item names,
    reasons, line edits, explanation, audit trail and outbox error are all hostile, and an admin whose username
    and display name are.

    Returns seed_demo's dict plus ``hostile_order``, ``hostile_store``, ``hostile_supplier``, ``hostile_user``
    (username, password) and ``names`` (where each stored name went)."""
    from replenish.orders.order_tables import add_event, set_status
    from replenish.platform.accounts import add_user
    from replenish.platform.demo import I1, I2, I3, seed_demo

    with engine.begin() as conn:
        world = seed_demo(conn, tag="x")
        conn.exec_driver_sql(MARTS)
        s1, s2 = world["stores"]
        p1, p2 = world["suppliers"]
        today = dt.date.fromisoformat(world["delivery_date"]) - dt.timedelta(days=1)
        store, supplier = s2 + 1, p2 + 1
        stores = {s1: CORPUS[1], s2: CORPUS[2], store: STORE_NAME + CORPUS[3]}
        suppliers = {p1: LOGOUT, p2: CORPUS[4], supplier: SUPPLIER_NAME + CORPUS[5]}
        items = {I1: CORPUS[6], I2: CORPUS[7], I3: CORPUS[8], HOSTILE_ITEM: ITEM_NAME, DOTS_ITEM: DOTS + CORPUS[9]}
        conn.execute(text("INSERT INTO marts.dim_stores VALUES (:i, :n)"),
                     [{"i": k, "n": v} for k, v in stores.items()])
        conn.execute(text("INSERT INTO marts.dim_suppliers VALUES (:i, :n, 'o@example.com')"),
                     [{"i": k, "n": v} for k, v in suppliers.items()])
        conn.execute(text("INSERT INTO marts.dim_items VALUES (:i, :n, :c, 1.5, :d)"),
                     [{"i": k, "n": v, "c": CORPUS[10], "d": today} for k, v in items.items()])
        conn.execute(
            text("INSERT INTO marts.fct_daily_demand VALUES (:s, :i, :d, :u)"),
            [{"s": store, "i": i, "d": today - dt.timedelta(days=n), "u": 3 + n % 4}
             for i in (I1, HOSTILE_ITEM) for n in range(14)],
        )

        user, password = add_user(conn, USERNAME, "inj@example.com", "admin", password="inj-admin-password",
                                  display_name=CORPUS[11])
        # the hostile order: its id and every free text of it
        conn.execute(
            text(
                """INSERT INTO orders.purchase_orders (order_id, store_id, supplier_id, delivery_date,
                    next_delivery_date, order_date, cutoff_at, run_id, reasons, channel, order_value)
                VALUES (:o, :s, :p, :d, :d + 1, :t, now() + interval '5 hours', 'inj', '{}', 'edifact', 10)"""
            ),
            {"o": ORDER_ID, "s": store, "p": supplier, "d": today + dt.timedelta(days=1), "t": today},
        )
        for item, qty in ((I1, 12), (HOSTILE_ITEM, 3), (DOTS_ITEM, 1)):
            conn.execute(
                text(
                    """INSERT INTO orders.order_lines (order_id, item_id, proposed_qty, final_qty, explanation,
                        edited_by, edited_at, edit_reason)
                    VALUES (:o, :i, :q, :q + 1, CAST(:e AS jsonb), :u, now(), :r)"""
                ),
                {"o": ORDER_ID, "i": item, "q": qty, "e": json.dumps({"why": CORPUS[12]}), "u": USERNAME,
                 "r": CORPUS[13]},
            )
        add_event(conn, ORDER_ID, "system:propose", "created", None, "inj")
        set_status(conn, ORDER_ID, "in_review", "release:inj",
                   reasons=[CORPUS[0], f"max_deviation:{HOSTILE_ITEM}", f"promotion:{SHORT20}",
                            f"line_risk_waste:{ITEM_NAME}", f"{CORPUS[14]}:{I1}"])
        add_event(conn, ORDER_ID, USERNAME, CORPUS[14], CORPUS[0], CORPUS[1])
        add_event(conn, ORDER_ID, CORPUS[2], f"line_edited:{HOSTILE_ITEM}", CORPUS[3], CORPUS[4])
        add_event(conn, ORDER_ID, CORPUS[2], f"edit_reason:{ITEM_NAME}", None, CORPUS[5])
        conn.execute(
            text(
                """INSERT INTO orders.outbox (order_id, idempotency_key, channel, payload, status, attempts,
                    last_error) VALUES (:o, 'inj-key', :c, '{}', 'retry', 1, :e)"""
            ),
            {"o": ORDER_ID, "c": CORPUS[5], "e": CORPUS[6]},
        )
    world.update(
        hostile_order=ORDER_ID,
        hostile_store=store,
        hostile_supplier=supplier,
        hostile_user={"username": USERNAME, "password": password, "display_name": user.display_name},
        names={"stores": stores, "suppliers": suppliers, "items": items},
    )
    return world


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        where = f"<{tag} {' '.join(k for k in a)}>"
        if (a.get("id") or "").startswith("inj"):
            self.found.append(f"element with id {a['id']!r}: {where}")
        for name in a:
            if name.startswith("on"):
                self.found.append(f"event handler attribute {name}: {where}")
            if (name.startswith(("hx-", "data-hx-")) and name not in ALLOWED_HX) or name == "hx-on":
                self.found.append(f"htmx attribute {name}: {where}")
            if name in ("hx-boost", "hx-headers") and tag != "body":
                self.found.append(f"{name} outside <body>: {where}")
        if tag == "script" and not a.get("src"):
            self.found.append("inline <script>")
        if tag in ("iframe", "object", "embed", "base", "style") or (tag == "meta" and "http-equiv" in a):
            self.found.append(f"<{tag}> element")
        href = (a.get("href") or a.get("action") or "").strip().lower()
        if href.startswith(("javascript:", "data:text")):
            self.found.append(f"script URL in {where}")


def injected(page: str) -> list[str]:
    """What in this HTML could only have come from a payload (elements, handlers, htmx attributes)."""
    scan = _Scan()
    scan.feed(page)
    scan.close()
    return scan.found


def raw_payloads(page: str, payloads: list[str] | tuple[str, ...] = CORPUS) -> list[str]:
    """Payloads (those with markup characters) that occur unescaped in the HTML."""
    extra = [SHORT10, SHORT20, USERNAME, STORE_NAME, SUPPLIER_NAME, ITEM_NAME, ORDER_ID]
    return [p for p in (*payloads, *extra) if any(ch in p for ch in "<>\"'") and p in page]

"""Demo users for ``make demo`` and a small self-contained fixture for the platform's tests.

- ``seed_demo_users(conn)``: after a nightly run, one admin, two buyers (the suppliers split in two
  halves) and a store manager for each of the first stores; generated passwords, returned once.
  Idempotent: re-running resets the demo users' passwords and scopes (and reactivates them).
- ``seed_demo(conn)``: orders for two stores x two suppliers (no marts needed), users of every role and a
  POS API key per store; every name carries a tag so several fixtures can share one database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from replenish import migrations
from replenish.orders.order_tables import add_event, set_status
from replenish.platform import accounts, api_keys

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

DEMO_PASSWORD_NOTE = "generated now; re-run `replenish users demo` to get new ones"


def _upsert_user(conn: Connection, username: str, role: str, scopes: dict[str, list[int]], display: str) -> str:
    """Create the user or reset its password/scopes/active flag; returns the new clear password."""
    password = accounts.generate_password()
    if accounts.get_user(conn, username) is None:
        accounts.add_user(conn, username, f"{username}@example.com", role, password=password,
                          display_name=display, scopes=scopes)
    else:
        conn.execute(
            text("UPDATE platform.users SET role = :r, display_name = :d, is_active = true WHERE username = :u"),
            {"r": role, "d": display, "u": username},
        )
        accounts.set_password(conn, username, password)
        accounts.set_scopes(conn, username, scopes)
    return password


def _stores_and_suppliers(conn: Connection) -> tuple[list[int], list[int]]:
    """The stores and suppliers that order: the replenishment parameters (so the demo users exist before the first
    nightly run mails its digests), else the orders already proposed."""
    source = ("marts.dim_replenishment_parameters"
              if conn.exec_driver_sql("SELECT to_regclass('marts.dim_replenishment_parameters')").scalar()
              else "orders.purchase_orders")
    rows = conn.execute(
        text(f"SELECT DISTINCT store_id, supplier_id FROM {source} ORDER BY 1, 2")
    ).fetchall()
    stores = sorted({int(r[0]) for r in rows})
    suppliers = sorted({int(r[1]) for r in rows})
    return stores, suppliers


def seed_demo_users(conn: Connection, *, managers: int = 3, with_api_key: bool = True) -> list[dict[str, Any]]:
    """Demo accounts over the stores and suppliers of the warehouse (call after the first ``dbt build``).

    Returns one dict per account: username, role, password (clear, only now), scopes; plus a POS API key
    for the first store (``role`` = "pos_terminal", ``api_key``) when ``with_api_key``."""
    migrations.ensure_current(conn)
    stores, suppliers = _stores_and_suppliers(conn)
    half = (len(suppliers) + 1) // 2
    accounts_out: list[dict[str, Any]] = []
    plan: list[tuple[str, str, dict[str, list[int]], str]] = [("demo-admin", "admin", {}, "Demo admin")]
    for n, group in enumerate((suppliers[:half], suppliers[half:]), start=1):
        if group:
            plan.append((f"demo-buyer-{n}", "buyer", {"supplier": group}, f"Demo buyer {n}"))
    # a manager for the first stores and for every store whose orders wait in review (the demo's store with the
    # missing stock count): someone can sign in and decide them on a phone
    waiting = [int(r[0]) for r in conn.execute(text(
        "SELECT DISTINCT store_id FROM orders.purchase_orders WHERE status IN ('proposed', 'in_review')"
    )).all()]
    for store in list(dict.fromkeys(stores[:managers] + sorted(waiting)))[:managers + 5]:
        plan.append((f"demo-manager-{store}", "store_manager", {"store": [store]}, f"Manager store {store}"))
    for username, role, scopes, display in plan:
        pw = _upsert_user(conn, username, role, scopes, display)
        accounts_out.append({"username": username, "role": role, "password": pw, "scopes": scopes})
    if with_api_key and stores:
        name = f"demo-till-{stores[0]}"
        api_keys.revoke_key(conn, name)
        key, clear = api_keys.create_key(conn, name, stores[0], created_by="demo")
        accounts_out.append({"username": name, "role": "pos_terminal", "api_key": clear,
                             "scopes": {"store": [stores[0]]}})
    return accounts_out


def format_demo_users(rows: list[dict[str, Any]], base_url: str) -> str:
    """Human-readable sign-in block for the demo's last screen."""
    out = [f"Ordering platform: {base_url}  (passwords {DEMO_PASSWORD_NOTE})"]
    for r in rows:
        scope = ", ".join(f"{k} {'/'.join(map(str, v))}" for k, v in r["scopes"].items()) or "everything"
        if r["role"] == "pos_terminal":
            out.append(f"  POS API key ({scope}): {r['api_key']}   docs: {base_url}/docs")
        else:
            out.append(f"  {r['role']:<13} {r['username']:<22} {r['password']:<18} sees {scope}")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ test fixture
ITEMS = {
    # item: (pack size, MOQ, proposed qty); ids far above any master's, so the marts never name them
    990_001: (6, 12, 12),
    990_002: (1, 0, 5),
    990_003: (4, 8, 8),
}
I1, I2, I3 = ITEMS


def tag_ids(tag: str) -> tuple[int, int]:
    """The first of the two store ids and of the two supplier ids of a seed_demo(tag) world: distinct per tag, so
    worlds of several tests share one database, and above any master's ids."""
    base = 1_000_000_000 + int(hashlib.sha256(tag.encode()).hexdigest()[:12], 16) % 100_000_000 * 10
    return base + 1, base + 5  # the suppliers apart from the stores: a mix-up of the two shows


def _explanation(qty: int, pack: int, moq: int) -> str:
    return json.dumps(
        {
            "quantile": "P80",
            "coverage_days": 1,
            "steps": {"net_need": qty, "moq": [moq, max(qty, moq)], "pack": [pack, qty]},
            "final": qty,
            "interval_width": 1.2,
            "why": f"why {qty}: P80 demand {qty - 0.5:.3f} over 1 day(s) minus position 0.000 = need {qty}; "
            f"MOQ {moq} -> {max(qty, moq)}; pack {pack} -> {qty}",
        }
    )


def seed_demo(conn: Connection, *, tag: str | None = None, today: dt.date | None = None,
              now: dt.datetime | None = None) -> dict[str, Any]:
    """A small world for tests: two stores and two suppliers (ids from :func:`tag_ids`), one open order per store
    x supplier for tomorrow (plus one for the day after at the first store and supplier), users of every role and
    a POS API key per store. Returns names, ids, passwords and keys (see the keys of the dict)."""
    from replenish import clock

    migrations.ensure_current(conn)
    tag = tag or "t" + uuid.uuid4().hex[:6]
    today = today or clock.today(conn)
    now = now or dt.datetime.now(dt.UTC)
    first_store, first_supplier = tag_ids(tag)
    stores, suppliers = [first_store, first_store + 1], [first_supplier, first_supplier + 1]
    orders: dict[str, str] = {}
    plan = [(s, p, 1) for s in stores for p in suppliers] + [(stores[0], suppliers[0], 2)]
    for store, supplier, days in plan:
        delivery = today + dt.timedelta(days=days)
        oid = f"{tag}-{store}-{supplier}-{delivery:%Y%m%d}"
        created = conn.execute(
            text(
                """INSERT INTO orders.purchase_orders (order_id, store_id, supplier_id, delivery_date,
                    next_delivery_date, order_date, cutoff_at, run_id, reasons, channel, order_value)
                VALUES (:o, :s, :p, :d, :n, :od, :c, 'demo', '{}', 'edifact', 100)
                ON CONFLICT DO NOTHING RETURNING 1"""
            ),
            {
                "o": oid,
                "s": store,
                "p": supplier,
                "d": delivery,
                "n": delivery + dt.timedelta(days=1),
                "od": today,
                "c": now + dt.timedelta(hours=5 + 24 * (days - 1)),
            },
        ).first()
        if created:
            for item, (pack, moq, qty) in ITEMS.items():
                conn.execute(
                    text(
                        "INSERT INTO orders.order_lines (order_id, item_id, proposed_qty, final_qty, explanation) "
                        "VALUES (:o, :i, :q, :q, CAST(:e AS jsonb))"
                    ),
                    {"o": oid, "i": item, "q": qty, "e": _explanation(qty, pack, moq)},
                )
            add_event(conn, oid, "system:propose", "created", None, "demo")
            set_status(conn, oid, "in_review", "release:demo", reasons=[f"max_deviation:{I1}", f"promotion:{I2}"])
        orders[f"{store}/{supplier}/{days}"] = oid
    users: dict[str, dict[str, str]] = {}
    for key, role, scopes in (
        ("admin", "admin", {}),
        ("buyer1", "buyer", {"supplier": [suppliers[0]]}),
        ("buyer2", "buyer", {"supplier": [suppliers[1]]}),
        ("manager1", "store_manager", {"store": [stores[0]]}),
        ("manager2", "store_manager", {"store": [stores[1]]}),
    ):
        username = f"{tag}-{key}"
        users[key] = {"username": username, "password": _upsert_user(conn, username, role, scopes, username),
                      "role": role}
    keys: dict[int, str] = {}
    for store in stores:
        name = f"{tag}-till-{store}"
        api_keys.revoke_key(conn, name)
        keys[store] = api_keys.create_key(conn, name, store, created_by="seed_demo")[1]
    return {
        "tag": tag,
        "stores": stores,
        "suppliers": suppliers,
        "items": {k: {"pack_size": v[0], "moq": v[1], "proposed_qty": v[2]} for k, v in ITEMS.items()},
        "orders": orders,  # "<store>/<supplier>/<days ahead>" -> order_id
        "users": users,  # admin, buyer1 (supplier P1), buyer2 (P2), manager1 (store S1), manager2 (S2)
        "api_keys": keys,  # store -> clear API key
        "delivery_date": (today + dt.timedelta(days=1)).isoformat(),
    }


def retire_demo(conn: Connection, tag: str) -> int:
    """Test teardown: dead-letter the still pending outbox messages of a seed_demo(tag) world, so a later
    dispatcher run (another test) does not send them. Returns how many were retired."""
    res = conn.execute(
        text(
            """UPDATE orders.outbox SET status = 'dead_letter', last_error = 'retired by test teardown'
            WHERE order_id LIKE :p AND status IN ('pending', 'retry')"""
        ),
        {"p": tag + "-%"},
    )
    return int(res.rowcount or 0)

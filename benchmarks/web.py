"""``replenish bench web``: latency of the ordering platform under 50 concurrent clients (locust, loopback only).

In its own database (``<warehouse db>_bench_web``, rebuilt on every run) it seeds a realistic review queue:
35 stores x 4 suppliers x 25 items, two open delivery days in review plus 28 days of sent history (with
their outbox messages and events), display names in small marts tables, a store manager per store, two
buyers (two suppliers each), an admin and two POS terminals per store (one API key each). It serves the
platform with uvicorn (2 workers) on a free loopback port and runs locust headless in a subprocess, one
scenario after the other:

- ``review_queue``: signed-in users (sessions created up front: the sign-in rate limit and argon2 are not
  what is measured) GET /queue, mostly store managers, some buyers and the admin;
- ``proposals_api``: POS terminals GET /api/v1/proposals with their own API key (the default per-key rate
  limit stays on: one terminal polls about once a second, well below it).

Statistics are reset once all users are running, so the figures describe the steady state at N clients.
Nothing is timed in the tests; the target (p95 < 200 ms) is reported, not asserted.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from replenish.settings import Settings, get_settings

log = logging.getLogger(__name__)

LOCUSTFILE = Path(__file__).with_name("web_locustfile.py")
TARGET_P95_MS = 200.0
SCENARIOS = {"review_queue": "WebReviewer", "proposals_api": "PosTerminal"}


@dataclass(frozen=True)
class BenchShape:
    stores: int = 35
    suppliers: int = 4
    items_per_supplier: int = 25
    open_days: int = 2
    history_days: int = 28
    buyers: int = 2
    terminals_per_store: int = 2


# ------------------------------------------------------------------------------------------------ database
def bench_settings(settings: Settings | None = None) -> Settings:
    """The same server as the warehouse, database ``<name>_bench_web`` (never the warehouse itself)."""
    s = settings or get_settings()
    if s.database_url:
        base, _, name = s.database_url.rpartition("/")
        name = name.split("?")[0] or "postgres"
        return s.model_copy(update={"database_url": f"{base}/{name}_bench_web"})
    return s.model_copy(update={"embedded_database": f"{s.embedded_database}_bench_web"})


def _server_env(s: Settings) -> dict[str, str]:
    """Environment that points a child process (uvicorn) at the bench database."""
    env = {"REPLENISH_STATE_DIR": str(s.state), "REPLENISH_EMBEDDED_PORT": str(s.embedded_port)}
    if s.database_url:
        env["REPLENISH_DATABASE_URL"] = s.database_url
    else:
        env["REPLENISH_EMBEDDED_DATABASE"] = s.embedded_database
    return env


def _engine(s: Settings) -> Any:
    from replenish.database import database_url, engine_for
    from replenish.pg_server import ensure_database

    if s.database_url:
        base, _, name = s.database_url.rpartition("/")
        ensure_database(f"{base}/postgres", name)
    return engine_for(database_url(s))  # embedded: start() creates the database


_MARTS = """
DROP SCHEMA IF EXISTS orders CASCADE;
DROP SCHEMA IF EXISTS platform CASCADE;
DROP SCHEMA IF EXISTS marts CASCADE;
DROP TABLE IF EXISTS public.alembic_version;  -- so that the migrations create orders and platform again
CREATE SCHEMA marts;
CREATE TABLE marts.dim_stores (store_id integer PRIMARY KEY, store_name text NOT NULL);
CREATE TABLE marts.dim_suppliers (supplier_id integer PRIMARY KEY, supplier_name text NOT NULL, email text);
CREATE TABLE marts.dim_items (item_id integer, item_name text NOT NULL, category text, snapshot_date date,
    PRIMARY KEY (item_id, snapshot_date));
"""

# One statement per table over generate_series: seconds, not minutes, for ~100k lines.
_ORDERS = """
WITH o AS (
    SELECT st, su, d, st AS store_id, su AS supplier_id, CAST(:today AS date) + d AS delivery_date
    FROM generate_series(1, :stores) st, generate_series(1, :suppliers) su,
         generate_series(1 - :history, :open_days) d
)
INSERT INTO orders.purchase_orders (order_id, store_id, supplier_id, delivery_date, next_delivery_date, order_date,
    cutoff_at, status, version, run_id, released_by, reasons, channel, order_value)
SELECT 'B' || lpad(st::text, 3, '0') || '-P' || lpad(su::text, 2, '0') || '-' || to_char(delivery_date, 'YYYYMMDD'),
       store_id, supplier_id,
       delivery_date, delivery_date + 1, delivery_date - 1,
       (delivery_date - 1 + time '11:00') AT TIME ZONE CAST(:tz AS text),
       CASE WHEN d >= 1 THEN 'in_review' ELSE 'sent' END, CASE WHEN d >= 1 THEN 1 ELSE 2 END,
       'bench', CASE WHEN d >= 1 THEN NULL WHEN (st + su + d) % 3 = 0 THEN 'bench-buyer' ELSE 'release:bench' END,
       CASE WHEN d < 1 THEN '{}'::text[]
            WHEN (st + su) % 3 = 0
                THEN ARRAY['max_deviation:' || (su * 1000 + 3), 'promotion:' || (su * 1000 + 7)]
            WHEN (st + su) % 3 = 1 THEN ARRAY['forecast_interval_wide:' || (su * 1000 + 11)]
            ELSE ARRAY['quantity_unusual:' || (su * 1000 + 5)] END,
       'edifact', 0
FROM o
"""

_LINES = """
INSERT INTO orders.order_lines (order_id, item_id, proposed_qty, final_qty, explanation)
SELECT p.order_id, p.supplier_id * 1000 + i,
       q, q,
       jsonb_build_object('quantile', 'P80', 'coverage_days', 1, 'interval_width', 1.1, 'final', q,
                          'steps', jsonb_build_object('net_need', q, 'pack', jsonb_build_array(1 + i % 4, q),
                                                      'moq', jsonb_build_array(0, q)),
                          'why', 'why ' || q || ': P80 demand over 1 day(s) minus position = need ' || q)
FROM orders.purchase_orders p, generate_series(1, :items) i,
     LATERAL (SELECT (1 + i % 4) * (1 + (hashtext(p.order_id || i) & 7)) AS q) qq
"""

_OUTBOX = """
INSERT INTO orders.outbox (order_id, idempotency_key, channel, payload, status, attempts, created_at, sent_at,
    sent_by_run)
SELECT order_id, order_id, channel, jsonb_build_object('order_id', order_id), 'sent', 1, created_at, created_at,
       'bench'
FROM orders.purchase_orders WHERE status = 'sent'
"""

_EVENTS = """
INSERT INTO orders.order_events (order_id, at, actor, event, from_value, to_value)
SELECT order_id, created_at, 'system:propose', 'created', NULL, run_id FROM orders.purchase_orders
UNION ALL
SELECT order_id, created_at, 'release:bench', 'status', 'proposed', 'in_review' FROM orders.purchase_orders
WHERE status = 'in_review'
UNION ALL
SELECT order_id, created_at, 'dispatcher:bench', 'status', 'queued', 'sent' FROM orders.purchase_orders
WHERE status = 'sent'
"""


def _seed_masters(conn: Any, shape: BenchShape, today: dt.date) -> tuple[list[int], list[int]]:
    """The stores, suppliers and items (item ``supplier x 1000 + n``) the orders refer to: (store ids, supplier
    ids)."""
    stores = list(range(1, shape.stores + 1))
    suppliers = list(range(1, shape.suppliers + 1))
    conn.execute(
        text("INSERT INTO marts.dim_stores VALUES (:s, :n)"), [{"s": s, "n": f"Store {s:03d}"} for s in stores]
    )
    conn.execute(
        text("INSERT INTO marts.dim_suppliers VALUES (:s, :n, :e)"),
        [{"s": s, "n": f"Supplier P{s:02d}", "e": f"orders-p{s:02d}@example.com"} for s in suppliers],
    )
    conn.execute(
        text("INSERT INTO marts.dim_items VALUES (:i, :n, :c, :d)"),
        [
            {"i": s * 1000 + i, "n": f"Article P{s:02d}-{i:02d}", "c": ("bread", "pastry", "snacks")[i % 3],
             "d": today}
            for s in suppliers
            for i in range(1, shape.items_per_supplier + 1)
        ],
    )
    return stores, suppliers


def _seed_orders(conn: Any, shape: BenchShape, today: dt.date) -> None:
    """The order history in set-based SQL: orders, their lines and values, the outbox and the audit trail."""
    from replenish import clock

    params = {
        "tz": clock.business_tz().key,
        "today": today,
        "stores": shape.stores,
        "suppliers": shape.suppliers,
        "history": shape.history_days,
        "open_days": shape.open_days,
        "items": shape.items_per_supplier,
    }
    conn.execute(text(_ORDERS), params)
    conn.execute(text(_LINES), params)
    conn.execute(
        text(
            """UPDATE orders.purchase_orders p SET order_value = v.value FROM (
                SELECT order_id, sum(final_qty) * 1.25 AS value FROM orders.order_lines GROUP BY order_id) v
            WHERE v.order_id = p.order_id"""
        )
    )
    conn.execute(text(_OUTBOX))
    conn.execute(text(_EVENTS))


def _seed_users(
    conn: Any, shape: BenchShape, stores: list[int], suppliers: list[int]
) -> tuple[list[tuple[str, str, dict[str, list[int]]]], list[dict[str, str]]]:
    """An admin, the buyers (suppliers split between them) and a manager per store, each with a session:
    (users as (username, role, scopes), sessions)."""
    from replenish.platform import accounts
    from replenish.platform.sessions import create_session

    password = accounts.generate_password()  # one for all: the bench never signs in through the form
    users: list[tuple[str, str, dict[str, list[int]]]] = [("bench-admin", "admin", {})]
    per_buyer = max(1, len(suppliers) // max(shape.buyers, 1))
    for b in range(shape.buyers):
        users.append((f"bench-buyer-{b + 1}", "buyer", {"supplier": suppliers[b * per_buyer : (b + 1) * per_buyer]}))
    users += [(f"bench-manager-B{s:03d}", "store_manager", {"store": [s]}) for s in stores]
    sessions: list[dict[str, str]] = []
    first, _ = accounts.add_user(conn, users[0][0], f"{users[0][0]}@example.com", users[0][1], password=password)
    for username, role, scopes in users[1:]:
        # the same argon2 hash for everyone: one hash costs about a second on a busy 2-core machine
        conn.execute(
            text(
                """INSERT INTO platform.users (username, email, display_name, role, password_hash)
                SELECT :u, :e, :u, :r, password_hash FROM platform.users WHERE user_id = :first"""
            ),
            {"u": username, "e": f"{username}@example.com", "r": role, "first": first.user_id},
        )
        accounts.set_scopes(conn, username, scopes)
    for username, role, _scopes in users:
        user = accounts.get_user(conn, username)
        assert user is not None
        token, _csrf = create_session(conn, user, 12)
        sessions.append({"username": username, "role": role, "token": token})
    return users, sessions


def _seeded_counts(conn: Any) -> dict[str, int]:
    counts = dict(
        conn.execute(
            text(
                """SELECT 'orders', count(*) FROM orders.purchase_orders
                UNION ALL SELECT 'open_orders', count(*) FROM orders.purchase_orders WHERE status = 'in_review'
                UNION ALL SELECT 'order_lines', count(*) FROM orders.order_lines
                UNION ALL SELECT 'order_events', count(*) FROM orders.order_events
                UNION ALL SELECT 'outbox_messages', count(*) FROM orders.outbox"""
            )
        ).fetchall()
    )
    return {k: int(v) for k, v in counts.items()}


def seed(conn: Any, shape: BenchShape, today: dt.date) -> dict[str, Any]:
    """Rebuild the bench world; returns counts and the credentials the load clients use."""
    from replenish import migrations
    from replenish.platform import api_keys

    db = conn.exec_driver_sql("SELECT current_database()").scalar()
    if not str(db).endswith("_bench_web"):  # it drops schemas: never anywhere but the bench's own database
        raise ValueError(f"database: the web bench seeds only a *_bench_web database, not {db!r}")
    conn.exec_driver_sql(_MARTS)
    migrations.upgrade(conn)
    stores, suppliers = _seed_masters(conn, shape, today)
    _seed_orders(conn, shape, today)
    conn.exec_driver_sql("ANALYZE")
    users, sessions = _seed_users(conn, shape, stores, suppliers)
    keys = []
    for s in stores:
        for t in range(1, shape.terminals_per_store + 1):
            keys.append({"store_id": s, "key": api_keys.create_key(conn, f"bench-till-{s}-{t}", s)[1]})
    return {
        "counts": _seeded_counts(conn) | {"users": len(users), "api_keys": len(keys)},
        "sessions": sessions,
        "api_keys": keys,
    }


# ------------------------------------------------------------------------------------------------ running
def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with code {proc.returncode} (see its log)")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from {url} within {timeout_s:.0f} s") from None
            time.sleep(0.3)


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_stats(prefix: Path) -> dict[str, dict[str, Any]]:
    """Per request name (plus 'Aggregated'): count, failures, rps, p50/p95/p99/max in ms (locust's CSV)."""
    out: dict[str, dict[str, Any]] = {}
    with open(f"{prefix}_stats.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            def num(col: str, row: dict[str, str] = row) -> float | None:
                v = row.get(col)
                return None if v is None or v in ("", "N/A") else float(v)

            out[row["Name"]] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": round(num("Requests/s") or 0.0, 1),
                "p50_ms": num("50%"),
                "p95_ms": num("95%"),
                "p99_ms": num("99%"),
                "max_ms": round(num("Max Response Time") or 0.0, 1),
                "mean_ms": round(num("Average Response Time") or 0.0, 1),
            }
    return out


def _run_locust(
    scenario: str, base_url: str, creds_file: Path, workdir: Path, *, users: int, duration_s: int
) -> dict[str, Any]:
    prefix = workdir / scenario
    spawn_rate = max(users // 5, 1)  # everyone running within ~5 s; stats reset then (--reset-stats) ...
    run_s = duration_s + -(-users // spawn_rate)  # ... so the ramp-up comes on top of the measured duration
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "--host", base_url, "-u", str(users), "-r", str(spawn_rate), "-t", f"{run_s}s",
        "--reset-stats", "--stop-timeout", "5", "--csv", str(prefix), "--loglevel", "WARNING",
        SCENARIOS[scenario],
    ]  # fmt: skip
    env = {**os.environ, "REPLENISH_BENCH_CREDENTIALS": str(creds_file)}
    log.info("locust %s: %d users for %d s against %s", scenario, users, duration_s, base_url)
    with open(workdir / f"{scenario}.log", "wb") as fh:
        rc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    stats = _read_stats(prefix)
    agg = stats.pop("Aggregated", None)
    if agg is None:
        raise RuntimeError(f"locust wrote no statistics (exit {rc}); see {workdir / f'{scenario}.log'}")
    return {"locust_exit_code": rc, **agg, "by_request": stats}


def run_web_bench(
    *,
    users: int = 50,
    duration_s: int = 30,
    workers: int = 2,
    shape: BenchShape | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Seed, serve, load, report (one JSON-able dict)."""
    if users < 1 or duration_s < 1 or workers < 1:
        raise ValueError("users, duration and workers must be at least 1")
    shape = shape or BenchShape()
    load_before = _loadavg()
    s = bench_settings(settings)
    from replenish import clock

    today = clock.today()
    t0 = time.perf_counter()
    eng = _engine(s)
    with eng.begin() as conn:
        world = seed(conn, shape, today)
    eng.dispose()
    seed_s = time.perf_counter() - t0
    log.info("seeded %s in %.1f s", world["counts"], seed_s)

    with tempfile.TemporaryDirectory(prefix="replenish-bench-web-") as tmp:
        workdir = Path(tmp)
        creds = workdir / "credentials.json"
        creds.write_text(json.dumps({"sessions": world["sessions"], "api_keys": world["api_keys"]}))
        creds.chmod(0o600)
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        cmd = [
            sys.executable, "-m", "uvicorn", "--factory", "replenish.platform.app:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log",
            "--log-level", "warning",
        ]  # fmt: skip
        server_log = workdir / "uvicorn.log"
        with open(server_log, "wb") as fh:
            proc = subprocess.Popen(cmd, env={**os.environ, **_server_env(s)}, stdout=fh, stderr=subprocess.STDOUT)
        try:
            _wait_http(base_url + "/healthz", proc)
            scenarios = {
                name: _run_locust(name, base_url, creds, workdir, users=users, duration_s=duration_s)
                for name in SCENARIOS
            }
        except Exception:
            log.error("uvicorn log:\n%s", server_log.read_text(errors="replace")[-4000:])
            raise
        finally:
            _stop(proc)
        errors = [ln for ln in server_log.read_text(errors="replace").splitlines() if "ERROR" in ln]

    return {
        "users": users,
        "duration_s_per_scenario": duration_s,
        "uvicorn_workers": workers,
        "cpus": os.cpu_count(),
        # other work on the machine skews the figures: the 1-min load average before and after the run
        "load_average_1m": {"before": load_before, "after": _loadavg()},
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": all(
            sc["p95_ms"] is not None and sc["p95_ms"] < TARGET_P95_MS and sc["failures"] == 0
            for sc in scenarios.values()
        ),
        "data": world["counts"] | {"stores": shape.stores, "suppliers": shape.suppliers, "seed_s": round(seed_s, 1)},
        "scenarios": scenarios,
        "server_errors_logged": len(errors),
    }


def format_table(result: dict[str, Any]) -> str:
    d = result["data"]
    head = (
        f"Web platform under load: {result['users']} concurrent clients, {result['duration_s_per_scenario']} s per "
        f"scenario (steady state), uvicorn x{result['uvicorn_workers']}, {result['cpus']} CPUs, loopback "
        f"(load average {result['load_average_1m']['before']} before, {result['load_average_1m']['after']} after)\n"
        f"data: {d['stores']} stores x {d['suppliers']} suppliers, {d['open_orders']} open orders, "
        f"{d['orders']} orders / {d['order_lines']} lines in total\n"
    )
    cols = f"{'scenario / request':<40} {'reqs':>7} {'fail':>5} {'req/s':>7} " + " ".join(
        f"{c:>6}" for c in ("p50", "p95", "p99", "max")
    )
    rows = [cols, "-" * len(cols)]

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"

    for name, sc in result["scenarios"].items():
        for label, st in [(name, sc)] + [(f"  {k}", v) for k, v in sc["by_request"].items()]:
            rows.append(
                f"{label:<40} {st['requests']:>7} {st['failures']:>5} {st['rps']:>7.1f} {fmt(st['p50_ms']):>6} "
                f"{fmt(st['p95_ms']):>6} {fmt(st['p99_ms']):>6} {fmt(st['max_ms']):>6}"
            )
    verdict = "meets" if result["meets_target"] else "MISSES"
    tail = f"\nlatencies in ms; target p95 < {result['target_p95_ms']:.0f} ms with no failures: {verdict}"
    return head + "\n".join(rows) + tail

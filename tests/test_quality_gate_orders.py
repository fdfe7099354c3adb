"""The quality gate end to end on the generated bakery retailer: implausible export days stop the automatic
orders of the affected stores, and only theirs.

A dedicated database (``replenish_test_gate``) gets the real exports of 2019-02-01..2019-04-28 (the clean history:
extract, dbt, a trained model), then business days whose export files were tampered with the way the issue found
bad data getting through. Each day runs the nightly stages (extract, transform, validate, forecast, propose,
release) as ``replenish run`` does; the assertions are on the gate's verdict, the forecast flags and the release
step's reasons (not on sending: the dispatch time model is not this test's business).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.slow

WINDOW_START = dt.date(2019, 2, 1)
D = dt.date(2019, 4, 29)       # a Monday: the tampered stores' day
D2 = dt.date(2019, 4, 30)      # a Tuesday: another day's sales file in its folder
TEST_DB = "replenish_test_gate"

ERASED, OTHER_DAY, CHEAP, HUGE, FUTURE, NEW_ITEM, UNKNOWN_STORE = 17, 19, 20, 21, 22, 24, 9999
TAMPERED = {ERASED, OTHER_DAY, CHEAP, HUGE, FUTURE, NEW_ITEM, UNKNOWN_STORE}


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _write(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _tamper_day(root: Path) -> None:
    """D's sales file, store by store: each store a different kind of implausible data."""
    sales = root / D.isoformat() / "pos" / "sales_lines.csv"
    header, rows = _read(sales)
    _, last_week = _read(root / (D - dt.timedelta(days=7)).isoformat() / "pos" / "sales_lines.csv")
    out = []
    for r in rows:
        s = int(r["store_id"])
        if s == ERASED:                      # the day's sales erased: 0 units where the history says hundreds
            r = {**r, "quantity": "0", "amount": "0"}
        elif s == OTHER_DAY:                 # last Monday's lines in today's file (below)
            continue
        elif s == CHEAP and r["item_id"] == "101":
            r = {**r, "unit_price": "0.0001", "amount": "0.01"}
        elif s == HUGE and r["item_id"] == "101":
            r = {**r, "quantity": "1e300"}
        elif s == FUTURE and r["item_id"] == "101":
            r = {**r, "sold_at": "2031-04-29T20:00:00+02:00"}
        out.append(r)
    out += [r for r in last_week if int(r["store_id"]) == OTHER_DAY]
    template = next(r for r in rows if int(r["store_id"]) == NEW_ITEM)
    out.append({**template, "receipt_id": f"Z-{NEW_ITEM}-777-{D:%Y%m%d}", "item_id": "777"})
    out.append({**template, "receipt_id": f"Z-{UNKNOWN_STORE}-101-{D:%Y%m%d}", "store_id": str(UNKNOWN_STORE),
                "item_id": "101"})
    _write(sales, header, out)


@pytest.fixture(scope="module")
def gate_warehouse():
    """The clean history loaded, built and trained on in a database of its own; the settings point at it."""
    from support.databases import scratch_database

    from replenish import pipeline
    from replenish.data.exports import write_exports
    from replenish.data.retailer import generate_retailer
    from replenish.settings import get_settings

    settings = get_settings()
    url = scratch_database(TEST_DB)
    root = settings.state / "test-exports-gate"
    retailer = generate_retailer(settings)
    write_exports(retailer, root, start=WINDOW_START, end=D2 - dt.timedelta(days=1))
    write_exports(retailer, root, start=D, end=D2, force=True)   # the days this test tampers with
    saved = settings.database_url, settings.exports_root
    settings.database_url, settings.exports_root = url, root
    try:
        history = D - dt.timedelta(days=1)
        pipeline.extract(history, "gate-history")
        pipeline.transform(history, "gate-history")
        pipeline.train(history, "gate-history")
        yield root
    finally:
        settings.database_url, settings.exports_root = saved


def _nightly(day: dt.date, run_id: str) -> dict:
    from replenish import clock, pipeline, run_state

    # the night after the business date (frozen, in this test's own database): its orders' cutoffs lie ahead
    clock.set_clock(clock.end_of_business_day(day) + dt.timedelta(hours=1), frozen=True, set_by="test")

    for stage in (pipeline.extract, pipeline.transform, pipeline.validate, pipeline.forecast, pipeline.propose,
                  pipeline.release):
        stage(day, run_id)
    return run_state.stage_results(run_id)


def _rows(sql: str, **params) -> list[dict]:
    from replenish.database import begin

    with begin() as conn:
        return [dict(r) for r in conn.execute(text(sql), params).mappings().all()]


def _orders(day: dt.date) -> dict[int, list[dict]]:
    """The orders the nightly for business date ``day`` proposed (those of the next day)."""
    from replenish import clock

    out: dict[int, list[dict]] = {}
    for o in _rows("SELECT order_id, store_id, status, reasons FROM orders.purchase_orders WHERE order_date = :d",
                   d=clock.order_date_for(day)):
        out.setdefault(int(o["store_id"]), []).append(o)
    return out


def test_holidays_and_ordinary_days_of_the_real_history_pass(gate_warehouse):
    """The real panel around Easter 2019 (Good Friday, Easter Sunday and Monday: most stores shut; ordinary days
    after them): no store is blocked on clean data."""
    from replenish.quality import run_quality_gate

    for day in (dt.date(2019, 4, 19), dt.date(2019, 4, 21), dt.date(2019, 4, 22), dt.date(2019, 4, 23),
                dt.date(2019, 4, 28)):
        res = run_quality_gate(day, f"gate-clean-{day}")
        assert res.blocked_store_ids == [], (day, res.to_dict()["blocked_stores"])
        assert res.failed_blocking == [], (day, res.failed_blocking)


def test_tampered_stores_are_blocked_with_reasons_and_only_their_orders_go_to_review(gate_warehouse):
    _tamper_day(gate_warehouse)
    stages = _nightly(D, "gate-tampered")

    validate = stages["validate"]
    why = {b["store_id"]: dict(zip(b["reasons"], b["details"], strict=True)) for b in validate["blocked_stores"]}
    assert set(why) == TAMPERED, why
    assert set(why[ERASED]) == {"sales_collapse"}
    assert why[ERASED]["sales_collapse"].startswith("only 0 units sold on Monday 2019-04-29, where the store "
                                                    "usually sells about ")
    assert why[OTHER_DAY]["sales_outside_business_day"].endswith(
        "in the file for 2019-04-29 were sold on 2019-04-22: another day's sales file")
    assert "implausible unit price (0.0001" in why[CHEAP]["sales_prices_in_range"]
    huge = why[HUGE].get("sales_quantities_in_range") or why[HUGE].get("quarantined_store_rows") or ""
    assert "quantity" in huge, why[HUGE]   # blocked by the gate's range, or the loader's quarantine
    future = why[FUTURE].get("sales_outside_business_day") or why[FUTURE].get("quarantined_store_rows") or ""
    assert "2031" in future or "sold_at" in future, why[FUTURE]
    assert why[NEW_ITEM] == {"unknown_stores_items": "1 row for items the item master does not know (777)"}
    assert why[UNKNOWN_STORE]["unknown_stores_items"].startswith("store 9999 is not in the store master")

    gate = {r["store_id"]: r["is_automation_blocked"]
            for r in _rows("SELECT store_id, is_automation_blocked FROM ops.quality_gate WHERE business_date = :d",
                           d=D)}
    good = {s for s, blocked in gate.items() if not blocked}
    assert {s for s, blocked in gate.items() if blocked} == TAMPERED and len(good) == 35 - 6

    # forecasts flagged for the blocked stores only (the model is trained, so nothing else flags them)
    flagged = {r["store_id"]: r["flagged"] for r in _rows(
        "SELECT store_id, bool_or(is_flagged) AS flagged FROM forecast.forecasts WHERE origin_date = :d "
        "GROUP BY store_id", d=D)}
    assert {s for s, f in flagged.items() if f} == TAMPERED & set(flagged)
    assert not any(flagged[s] for s in good)
    assert stages["forecast"]["flagged_store_ids"] == sorted(TAMPERED)

    # no automatic order for a tampered store: every one of its orders waits in review, the gate named as a reason;
    # the other stores' orders are judged on their own merits (never held back by the gate)
    orders = _orders(D)
    tampered_orders = [o for s in TAMPERED for o in orders.get(s, [])]
    assert tampered_orders and {o["status"] for o in tampered_orders} == {"in_review"}
    assert all("quality_gate_blocked" in o["reasons"] for o in tampered_orders)
    good_orders = [o for s in good for o in orders.get(s, [])]
    assert len(good_orders) >= len(good)
    assert not any("quality_gate_blocked" in (o["reasons"] or ()) for o in good_orders)
    assert any(o["status"] != "in_review" for o in good_orders), "no good store's order was released"


def test_another_days_sales_file_blocks_every_store(gate_warehouse):
    root = gate_warehouse
    shutil.copyfile(root / (D2 - dt.timedelta(days=7)).isoformat() / "pos" / "sales_lines.csv",
                    root / D2.isoformat() / "pos" / "sales_lines.csv")
    stages = _nightly(D2, "gate-other-day")
    validate = stages["validate"]
    assert "sales_outside_business_day" in validate["failed_blocking"]
    stores_with_sales = {int(r["store_id"]) for r in _read(root / D2.isoformat() / "pos" / "sales_lines.csv")[1]}
    blocked = {b["store_id"]: b for b in validate["blocked_stores"]}
    assert stores_with_sales <= set(blocked)
    assert all(b["details"][b["reasons"].index("sales_outside_business_day")].endswith(
        "in the file for 2019-04-30 were sold on 2019-04-23: another day's sales file")
        for s, b in blocked.items() if s in stores_with_sales)
    orders = [o for os in _orders(D2).values() for o in os]
    assert orders and all(o["status"] == "in_review" and "quality_gate_blocked" in o["reasons"] for o in orders)

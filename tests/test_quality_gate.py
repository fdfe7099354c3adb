"""The quality gate on a tiny, dedicated database (never the shared warehouse's raw/marts)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import create_engine, text

from replenish.database import database_url, sqlalchemy_url
from replenish.settings import Settings

D = dt.date(2019, 4, 29)          # a Monday
TEST_DB = "replenish_test_quality"

RAW_DDL = """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE TABLE IF NOT EXISTS raw.mms_stores (store_id int, store_name text, city text, region text,
    opened_date date, is_active bool, _business_date date, _source_file text, _source_line int,
    _batch_id uuid, _loaded_at timestamptz DEFAULT now());
CREATE TABLE IF NOT EXISTS raw.mms_items (item_id int, item_name text, category text, shelf_life_days int,
    unit_price numeric, unit_cost numeric, is_active bool, _business_date date, _source_file text,
    _source_line int, _batch_id uuid, _loaded_at timestamptz DEFAULT now());
CREATE TABLE IF NOT EXISTS raw.mms_calendar (calendar_date date, region text, weekday text,
    is_public_holiday bool, is_school_holiday bool, _business_date date, _source_file text,
    _source_line int, _batch_id uuid, _loaded_at timestamptz DEFAULT now());
CREATE TABLE IF NOT EXISTS raw.pos_sales_lines (receipt_id text, store_id int, item_id int,
    sold_at timestamptz, quantity numeric, unit_price numeric, amount numeric, weekday text,
    _business_date date, _source_file text, _source_line int, _batch_id uuid,
    _loaded_at timestamptz DEFAULT now());
CREATE TABLE IF NOT EXISTS raw.pos_stock_levels (store_id int, item_id int, snapshot_at timestamptz,
    on_hand_qty numeric, _business_date date, _source_file text, _source_line int, _batch_id uuid,
    _loaded_at timestamptz DEFAULT now());
CREATE TABLE IF NOT EXISTS raw.quarantine (batch_id uuid, business_date date, source_file text,
    line_no int, field text, reason text, raw_record jsonb);
CREATE TABLE IF NOT EXISTS marts.fct_daily_demand (store_id int, item_id int, demand_date date,
    units_sold numeric, closing_stock numeric, is_stockout bool, waste_qty numeric, unit_price numeric,
    is_promotion bool, is_public_holiday bool, is_school_holiday bool, rain_mm numeric,
    temperature_c numeric, iso_weekday int);
"""
TABLES = ("raw.mms_stores", "raw.mms_items", "raw.mms_calendar", "raw.pos_sales_lines",
          "raw.pos_stock_levels", "raw.quarantine", "marts.fct_daily_demand")
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@pytest.fixture(scope="module")
def qdb():
    base = database_url()
    admin = create_engine(sqlalchemy_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": TEST_DB}).first():
            conn.execute(text(f'CREATE DATABASE "{TEST_DB}"'))
    admin.dispose()
    url = base.rsplit("/", 1)[0] + "/" + TEST_DB
    eng = create_engine(sqlalchemy_url(url), future=True)
    try:
        from replenish.extract import ensure_raw_schema  # the loader's DDL, when it exists
        ensure_raw_schema(eng)
    except ImportError:
        pass
    with eng.begin() as conn:
        for stmt in RAW_DDL.split(";"):
            if stmt.strip():
                conn.execute(text(stmt))
    yield eng, url
    eng.dispose()


@pytest.fixture
def wh(qdb, tmp_path):
    """A clean day D: stores 1 and 2, items 10 and 11, sales, stock, calendar, mart."""
    eng, url = qdb
    with eng.begin() as conn:
        for t in TABLES:
            conn.execute(text(f"TRUNCATE {t}"))
        meta = {"d": D, "f": "x.csv", "b": str(uuid.uuid4())}
        for s in (1, 2):
            conn.execute(text("""INSERT INTO raw.mms_stores (store_id, store_name, city, region, opened_date,
                is_active, _business_date, _source_file, _source_line, _batch_id)
                VALUES (:s, 'S', 'C', 'BY', DATE '2010-01-01', true, :d, :f, 2, :b)"""), {"s": s, **meta})
            for i in (10, 11):
                conn.execute(text("""INSERT INTO raw.pos_stock_levels (store_id, item_id, snapshot_at, on_hand_qty,
                    _business_date, _source_file, _source_line, _batch_id)
                    VALUES (:s, :i, :ts, 5, :d, :f, 2, :b)"""),
                    {"s": s, "i": i, "ts": dt.datetime(2019, 4, 29, 20, 0, tzinfo=dt.UTC), **meta})
                conn.execute(text("""INSERT INTO raw.pos_sales_lines (receipt_id, store_id, item_id, sold_at,
                    quantity, unit_price, amount, weekday, _business_date, _source_file, _source_line, _batch_id)
                    VALUES (:r, :s, :i, :ts, 3, 1.5, 4.5, 'Monday', :d, :f, 2, :b)"""),
                    {"r": f"R{s}-{i}", "s": s, "i": i,
                     "ts": dt.datetime(2019, 4, 29, 10, 0, tzinfo=dt.UTC), **meta})
                conn.execute(text("""INSERT INTO marts.fct_daily_demand (store_id, item_id, demand_date,
                    units_sold, closing_stock, iso_weekday) VALUES (:s, :i, :d, 3, 5, 1)"""), {"s": s, "i": i, "d": D})
        for i in (10, 11):
            conn.execute(text("""INSERT INTO raw.mms_items (item_id, item_name, category, shelf_life_days,
                unit_price, unit_cost, is_active, _business_date, _source_file, _source_line, _batch_id)
                VALUES (:i, 'I', 'bread', 2, 1.5, 0.5, true, :d, :f, 2, :b)"""), {"i": i, **meta})
        for k in range(-7, 29):
            day = D + dt.timedelta(days=k)
            conn.execute(text("""INSERT INTO raw.mms_calendar (calendar_date, region, weekday, is_public_holiday,
                is_school_holiday, _business_date, _source_file, _source_line, _batch_id)
                VALUES (:c, 'BY', :w, false, false, :d, :f, 2, :b)"""),
                {"c": day, "w": WEEKDAYS[day.weekday()], **meta})
    settings = Settings(database_url=url, state_dir=tmp_path)
    return eng, settings


def _run(settings, **kw):
    from replenish.quality import run_quality_gate

    return run_quality_gate(D, f"test-{uuid.uuid4().hex[:8]}", settings, **kw)


def _sql(eng, sql, **params):
    with eng.begin() as conn:
        return conn.execute(text(sql), params)


def test_clean_day_passes_and_results_are_written(wh):
    from replenish.quality import CHECKS, latest_gate

    eng, settings = wh
    res = _run(settings, data_docs=True)
    assert res.failed_blocking == [], res.to_dict()
    assert res.data_docs and (settings.state / "data_docs" / "index.html").exists()
    assert res.failed_warning == [], res.to_dict()
    assert not res.is_automation_blocked
    assert res.store_ids == [1, 2] and res.blocked_store_ids == []
    assert latest_gate(eng, D) == {1: False, 2: False}
    with eng.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM ops.quality_results WHERE run_id = :r"), {"r": res.run_id}).scalar()
        run = conn.execute(text("SELECT * FROM ops.quality_runs WHERE run_id = :r"), {"r": res.run_id}).mappings().one()
    assert n == len(CHECKS)
    assert run["is_automation_blocked_any"] is False and run["checks_failed_blocking"] == 0
    d = res.to_dict()
    assert d["is_automation_blocked"] is False and len(d["checks"]) == len(CHECKS)


def test_negative_stock_blocks_only_that_store(wh):
    from replenish.quality import latest_gate

    eng, settings = wh
    _sql(eng, "UPDATE raw.pos_stock_levels SET on_hand_qty = -2 WHERE store_id = 2 AND item_id = 10")
    res = _run(settings)
    assert res.failed_blocking == ["negative_stock"]
    assert res.blocked_store_ids == [2]
    assert res.is_automation_blocked
    assert latest_gate(eng, D) == {1: False, 2: True}
    with eng.connect() as conn:
        rows = conn.execute(text("""SELECT store_id, success, observed FROM ops.quality_results
            WHERE run_id = :r AND check_name = 'negative_stock' ORDER BY store_id NULLS FIRST"""),
            {"r": res.run_id}).all()
        reasons = conn.execute(text("SELECT reasons FROM ops.quality_gate WHERE run_id = :r AND store_id = 2"),
                               {"r": res.run_id}).scalar()
    assert [(r.store_id, r.success) for r in rows] == [(None, False), (2, False)]
    assert rows[1].observed["unexpected_rows"][0]["bad_rows"] == 1
    assert any("negative_stock" in x for x in reasons)


def test_missing_stock_snapshot_blocks_that_store(wh):
    eng, settings = wh
    _sql(eng, "DELETE FROM raw.pos_stock_levels WHERE store_id = 1")
    res = _run(settings)
    assert "stock_snapshot_freshness" in res.failed_blocking
    assert res.blocked_store_ids == [1]
    # a stale snapshot (dated the day before) is caught as well
    _sql(eng, """INSERT INTO raw.pos_stock_levels (store_id, item_id, snapshot_at, on_hand_qty, _business_date)
                 VALUES (1, 10, TIMESTAMPTZ '2019-04-28 20:00+00', 4, DATE '2019-04-29')""")
    res = _run(settings)
    assert res.failed_blocking == ["stock_snapshot_freshness"]
    assert res.blocked_store_ids == [1]


def test_store_without_any_data_is_a_missing_store_day(wh):
    eng, settings = wh
    _sql(eng, """INSERT INTO raw.mms_stores (store_id, store_name, city, region, opened_date, is_active, _business_date)
                 VALUES (3, 'S3', 'C', 'BY', DATE '2010-01-01', true, DATE '2019-04-29')""")
    res = _run(settings)
    assert set(res.failed_blocking) == {"missing_store_days", "stock_snapshot_freshness"}
    assert res.blocked_store_ids == [3]


def test_duplicate_receipt_blocks_all_stores(wh):
    eng, settings = wh
    _sql(eng, """INSERT INTO raw.pos_sales_lines (receipt_id, store_id, item_id, sold_at, quantity, unit_price,
                 amount, _business_date) SELECT receipt_id, store_id, item_id, sold_at, quantity, unit_price, amount,
                 _business_date FROM raw.pos_sales_lines WHERE receipt_id = 'R1-10'""")
    res = _run(settings)
    assert res.failed_blocking == ["duplicate_receipts"]
    assert res.blocked_store_ids == [1, 2]
    check = next(c for c in res.checks if c.name == "duplicate_receipts")
    assert check.observed["affected_store_ids"] == [1]


def test_weekday_labels_off_by_one_are_a_reported_warning(wh):
    from replenish.quality import latest_gate

    eng, settings = wh
    # the source's labels are one day ahead: Monday labelled Tuesday, ...
    _sql(eng, """UPDATE raw.mms_calendar SET weekday = CASE extract(isodow FROM calendar_date)::int
                 WHEN 1 THEN 'Tuesday' WHEN 2 THEN 'Wednesday' WHEN 3 THEN 'Thursday' WHEN 4 THEN 'Friday'
                 WHEN 5 THEN 'Saturday' WHEN 6 THEN 'Sunday' ELSE 'Monday' END""")
    res = _run(settings)
    assert res.failed_warning == ["weekday_label_consistency"]
    assert res.failed_blocking == [] and not res.is_automation_blocked
    check = next(c for c in res.checks if c.name == "weekday_label_consistency")
    assert check.observed["mislabelled_rows"] == 36
    assert check.observed["dominant_offset_days"] == 1
    assert latest_gate(eng, D) == {1: False, 2: False}
    with eng.connect() as conn:
        row = conn.execute(text("""SELECT severity, success FROM ops.quality_results
            WHERE run_id = :r AND check_name = 'weekday_label_consistency'"""), {"r": res.run_id}).one()
        run = conn.execute(text("SELECT checks_failed_warning FROM ops.quality_runs WHERE run_id = :r"),
                           {"r": res.run_id}).scalar()
    assert tuple(row) == ("warning", False) and run == 1


def test_bad_prices_and_missing_mart_fail_closed(wh):
    eng, settings = wh
    _sql(eng, "UPDATE raw.mms_items SET unit_price = 0 WHERE item_id = 11")
    _sql(eng, "UPDATE raw.pos_sales_lines SET unit_price = -1 WHERE store_id = 2 AND item_id = 11")
    _sql(eng, "UPDATE marts.fct_daily_demand SET units_sold = -1 WHERE store_id = 1 AND item_id = 11")
    res = _run(settings)
    assert set(res.failed_blocking) == {"item_prices_positive", "sales_prices_positive",
                                        "mart_units_sold_non_negative"}
    assert res.blocked_store_ids == [1, 2]
    by_name = {c.name: c for c in res.checks}
    assert by_name["sales_prices_positive"].failing_store_ids == [2]
    assert by_name["mart_units_sold_non_negative"].failing_store_ids == [1]
    # a missing mart is a failed blocking check for everyone, never an exception
    _sql(eng, "ALTER TABLE marts.fct_daily_demand RENAME TO fct_daily_demand_gone")
    try:
        res = _run(settings)
    finally:
        _sql(eng, "ALTER TABLE marts.fct_daily_demand_gone RENAME TO fct_daily_demand")
    assert {"mart_daily_demand_keys", "mart_units_sold_non_negative"} <= set(res.failed_blocking)
    assert res.is_automation_blocked and res.blocked_store_ids == [1, 2]


def test_rerun_same_run_id_is_idempotent(wh):
    from replenish.quality import run_quality_gate

    eng, settings = wh
    for _ in range(2):
        run_quality_gate(D, "test-idempotent", settings)
    with eng.connect() as conn:
        counts = [conn.execute(text(f"SELECT count(*) FROM ops.{t} WHERE run_id = 'test-idempotent'")).scalar()
                  for t in ("quality_runs", "quality_gate")]
    assert counts == [1, 2]

"""The quality gate on a tiny, dedicated database (never the shared warehouse's raw/marts)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import create_engine, text

from replenish import migrations
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
          "raw.pos_stock_levels", "raw.pos_waste_lines", "raw.mms_goods_receipts", "raw.quarantine",
          "marts.fct_daily_demand")
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
    migrations.upgrade(eng)
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
    assert res.failed_blocking == ["stock_in_range"]
    assert res.blocked_store_ids == [2]
    assert res.is_automation_blocked
    assert latest_gate(eng, D) == {1: False, 2: True}
    with eng.connect() as conn:
        rows = conn.execute(text("""SELECT store_id, success, observed FROM ops.quality_results
            WHERE run_id = :r AND check_name = 'stock_in_range' ORDER BY store_id NULLS FIRST"""),
            {"r": res.run_id}).all()
        gate = conn.execute(text("SELECT reasons, details FROM ops.quality_gate WHERE run_id = :r AND store_id = 2"),
                            {"r": res.run_id}).one()
    assert [(r.store_id, r.success) for r in rows] == [(None, False), (2, False)]
    assert rows[1].observed["unexpected_rows"][0]["bad_rows"] == 1
    assert gate.reasons == ["stock_in_range"]
    assert gate.details == ["1 stock level outside 0 to 1,000,000 (-2)"]
    assert rows[1].observed["reason"] == gate.details[0]
    assert res.to_dict()["blocked_stores"] == [{"store_id": 2, "reasons": ["stock_in_range"],
                                                "details": gate.details}]


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


def test_duplicate_receipt_blocks_the_stores_holding_it(wh):
    eng, settings = wh
    _sql(eng, """INSERT INTO raw.pos_sales_lines (receipt_id, store_id, item_id, sold_at, quantity, unit_price,
                 amount, _business_date) SELECT receipt_id, store_id, item_id, sold_at, quantity, unit_price, amount,
                 _business_date FROM raw.pos_sales_lines WHERE receipt_id = 'R1-10'""")
    res = _run(settings)
    assert res.failed_blocking == ["duplicate_receipts"]
    assert res.blocked_store_ids == [1]
    assert res.store_reasons[1] == [("duplicate_receipts", "1 receipt id delivered more than once (e.g. R1-10)")]


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
    assert set(res.failed_blocking) == {"item_prices_in_range", "sales_prices_in_range",
                                        "mart_units_sold_non_negative"}
    assert res.blocked_store_ids == [1, 2]
    by_name = {c.name: c for c in res.checks}
    assert by_name["sales_prices_in_range"].failing_store_ids == [2]
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


# ---------------------------------------------------------------------------------------------
# plausibility: each implausible day blocks the affected store(s) only, with the reason in words

def _history(eng, qty=50):
    """Eight ordinary weeks before D for stores 1 and 2 (and D itself alike): each item sells ``qty`` a day,
    the morning delivery brings ``qty`` and 5 are left at close, so the stock snapshots reconcile with the sales."""
    lo, hi = D - dt.timedelta(days=56), D - dt.timedelta(days=1)
    days = "generate_series(CAST(:lo AS date), CAST(:hi AS date), interval '1 day') AS g(d)"
    keys = "unnest(ARRAY[1, 2]) AS s(store_id), unnest(ARRAY[10, 11]) AS i(item_id)"
    _sql(eng, f"""INSERT INTO raw.pos_sales_lines (receipt_id, store_id, item_id, sold_at, quantity, unit_price,
                     amount, _business_date)
                  SELECT 'H' || store_id || '-' || item_id || '-' || d::date, store_id, item_id,
                         d::date + time '10:00' AT TIME ZONE 'UTC', :q, 1.5, 1.5 * :q, d::date FROM {days}, {keys}""",
         lo=lo, hi=hi, q=qty)
    _sql(eng, f"""INSERT INTO raw.pos_stock_levels (store_id, item_id, snapshot_at, on_hand_qty, _business_date)
                  SELECT store_id, item_id, d::date + time '20:00' AT TIME ZONE 'UTC', 5, d::date
                  FROM {days}, {keys}""", lo=lo, hi=hi)
    _sql(eng, f"""INSERT INTO raw.mms_goods_receipts (receipt_no, po_id, line_no, store_id, item_id, received_date,
                     quantity, _business_date)
                  SELECT 'GR' || store_id || '-' || item_id || '-' || d::date, 'PO', 1, store_id, item_id, d::date,
                         :q, d::date FROM {days}, {keys}""", lo=lo, hi=D, q=qty)
    _sql(eng, "UPDATE raw.pos_sales_lines SET quantity = :q, amount = 1.5 * :q WHERE _business_date = :d", q=qty, d=D)


def _reasons(res, store):
    return dict(res.store_reasons.get(store, []))


def test_ordinary_history_passes(wh):
    eng, settings = wh
    _history(eng)
    res = _run(settings)
    assert res.failed_blocking == [] and res.blocked_store_ids == [], res.to_dict()
    collapse = next(c for c in res.checks if c.name == "sales_collapse")
    assert collapse.success and not collapse.error


def test_erased_sales_day_is_a_collapse_but_a_closed_store_and_a_holiday_are_not(wh):
    eng, settings = wh
    _history(eng)
    # store 2's day erased: the lines say 0 units, the stock snapshots say the usual 100 left the shelves
    _sql(eng, "UPDATE raw.pos_sales_lines SET quantity = 0, amount = 0 WHERE _business_date = :d AND store_id = 2",
         d=D)
    res = _run(settings)
    assert res.failed_blocking == ["sales_collapse"] and res.blocked_store_ids == [2]
    assert _reasons(res, 2) == {"sales_collapse": (
        "only 0 units sold on Monday 2019-04-29, where the store usually sells about 100 on a Monday (median of "
        "8 weeks); by the stock snapshots about 100 units left the shelves")}
    with eng.connect() as conn:
        gate = dict(conn.execute(text("SELECT store_id, details FROM ops.quality_gate WHERE run_id = :r"),
                                 {"r": res.run_id}).all())
    assert gate == {1: [], 2: [_reasons(res, 2)["sales_collapse"]]}

    # the lines deleted instead of zeroed: the same verdict
    _sql(eng, "DELETE FROM raw.pos_sales_lines WHERE _business_date = :d AND store_id = 2", d=D)
    assert _run(settings).blocked_store_ids == [2]

    # a closed store: no sales, no delivery, the stock left as it was -> nothing left the shelves, not blocked
    _sql(eng, "UPDATE raw.mms_goods_receipts SET quantity = 0 WHERE _business_date = :d AND store_id = 2", d=D)
    res = _run(settings)
    assert res.blocked_store_ids == [], res.store_reasons

    # a public holiday of the store's region is not judged at all (a closed store, a quiet day)
    _sql(eng, "UPDATE raw.mms_goods_receipts SET quantity = 50 WHERE _business_date = :d AND store_id = 2", d=D)
    assert _run(settings).blocked_store_ids == [2]
    _sql(eng, "UPDATE raw.mms_calendar SET is_public_holiday = true WHERE calendar_date = :d", d=D)
    assert _run(settings).blocked_store_ids == []


def test_sold_out_store_is_not_a_collapse(wh):
    eng, settings = wh
    _history(eng)
    # a short delivery: store 1 got 5 of each item, sold them all (10 units, usually 100) and closed at 0 stock
    _sql(eng, "UPDATE raw.mms_goods_receipts SET quantity = 0 WHERE _business_date = :d AND store_id = 1", d=D)
    _sql(eng, "UPDATE raw.pos_sales_lines SET quantity = 5, amount = 7.5 WHERE _business_date = :d AND store_id = 1",
         d=D)
    _sql(eng, "UPDATE raw.pos_stock_levels SET on_hand_qty = 0 WHERE _business_date = :d AND store_id = 1", d=D)
    res = _run(settings)
    assert res.blocked_store_ids == [], res.store_reasons


def test_another_days_file_and_timestamps_outside_the_day(wh):
    eng, settings = wh
    # store 2's lines are last Monday's; store 1 has one line stamped in 2031 and one just after local midnight
    _sql(eng, "UPDATE raw.pos_sales_lines SET sold_at = sold_at - interval '7 days' WHERE store_id = 2")
    _sql(eng, "UPDATE raw.pos_sales_lines SET sold_at = TIMESTAMPTZ '2031-01-01 09:00+00' "
              "WHERE store_id = 1 AND item_id = 10")
    _sql(eng, "UPDATE raw.pos_sales_lines SET sold_at = TIMESTAMPTZ '2019-04-28 22:30+00' "
              "WHERE store_id = 1 AND item_id = 11")  # 00:30 on D in Berlin: fine
    res = _run(settings)
    assert res.failed_blocking == ["sales_outside_business_day"] and res.blocked_store_ids == [1, 2]
    assert _reasons(res, 2) == {"sales_outside_business_day": (
        "all 2 sales lines in the file for 2019-04-29 were sold on 2019-04-22: another day's sales file")}
    assert _reasons(res, 1)["sales_outside_business_day"] == (
        "1 of 2 sales lines sold outside 2019-04-29 (at 2031-01-01 10:00:00 local time)")


def test_prices_and_quantities_outside_their_ranges(wh, monkeypatch):
    from replenish.quality import QualityParams

    eng, settings = wh
    _sql(eng, "UPDATE raw.pos_sales_lines SET unit_price = 0.0001 WHERE store_id = 1 AND item_id = 10")
    _sql(eng, "UPDATE raw.pos_sales_lines SET quantity = 1e300 WHERE store_id = 2 AND item_id = 11")
    res = _run(settings)
    assert set(res.failed_blocking) == {"sales_prices_in_range", "sales_quantities_in_range"}
    assert res.blocked_store_ids == [1, 2]
    assert _reasons(res, 1) == {"sales_prices_in_range": (
        "1 sales line with an implausible unit price (0.0001; the item master says 1.5; accepted: 0.01 to 10,000 "
        "and 0.2x to 5x the item's price)")}
    assert _reasons(res, 2) == {"sales_quantities_in_range": (
        "1 sales line with an implausible quantity (1e+300; accepted: 0 to 100,000)")}
    # the ranges are typed settings: from the environment (REPLENISH_QUALITY_*) or passed explicitly
    _sql(eng, "UPDATE raw.pos_sales_lines SET unit_price = 1.5, quantity = 3")
    monkeypatch.setenv("REPLENISH_QUALITY_MAX_LINE_QUANTITY", "2")
    res = _run(settings)
    assert res.failed_blocking == ["sales_quantities_in_range"] and res.blocked_store_ids == [1, 2]
    monkeypatch.delenv("REPLENISH_QUALITY_MAX_LINE_QUANTITY")
    assert _run(settings, params=QualityParams(max_unit_price=1.0)).blocked_store_ids == [1, 2]
    assert _run(settings).blocked_store_ids == []


def test_unknown_store_and_item_block_only_their_store(wh):
    eng, settings = wh
    _sql(eng, """INSERT INTO raw.pos_sales_lines (receipt_id, store_id, item_id, sold_at, quantity, unit_price,
                 amount, _business_date) VALUES ('R9999', 9999, 10, TIMESTAMPTZ '2019-04-29 10:00+00', 3, 1.5, 4.5,
                 DATE '2019-04-29'), ('R2-999', 2, 999, TIMESTAMPTZ '2019-04-29 10:00+00', 3, 1.5, 4.5,
                 DATE '2019-04-29')""")
    res = _run(settings)
    assert res.failed_blocking == ["unknown_stores_items"]
    assert res.blocked_store_ids == [2, 9999] and 1 in res.store_ids
    assert _reasons(res, 9999) == {"unknown_stores_items": "store 9999 is not in the store master (1 row of sales)"}
    assert _reasons(res, 2) == {"unknown_stores_items": "1 row for items the item master does not know (999)"}


def test_quarantined_pos_rows_block_their_store(wh):
    eng, settings = wh
    _sql(eng, """INSERT INTO raw.quarantine (batch_id, business_date, connector, entity, source_file, line_no, field,
                 reason, raw_record) VALUES
                 (gen_random_uuid(), :d, 'csv', 'pos_sales_lines', 'pos/sales_lines.csv', 7, 'quantity',
                  'not a number: ''lots''', '{"store_id": "2", "quantity": "lots"}'),
                 (gen_random_uuid(), :d, 'csv', 'pos_sales_lines', 'pos/sales_lines.csv', 8, 'store_id',
                  'not an integer', '{"store_id": "x1"}')""", d=D)
    res = _run(settings)
    assert res.failed_blocking == ["quarantined_store_rows"] and res.blocked_store_ids == [2]
    assert _reasons(res, 2) == {"quarantined_store_rows": (
        "1 row of its POS exports rejected into quarantine (field quantity: not a number: 'lots')")}

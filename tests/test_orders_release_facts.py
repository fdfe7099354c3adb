import datetime as dt
import uuid

import pytest
from sqlalchemy import text

from replenish.orders.release import LineFacts, OrderFacts, evaluate, load_rules
from replenish.orders.stages import _usual, snapshot_freshness

D = dt.date(2019, 4, 29)


def test_snapshot_fresh_vs_business_date_not_wall_clock():
    snap = dt.datetime(2019, 4, 29, 18, 30, tzinfo=dt.UTC)  # 20:30 Berlin on D
    age, day = snapshot_freshness(snap, D)  # wall clock years later: irrelevant
    assert day == D and 3 <= age <= 4
    age, day = snapshot_freshness(snap - dt.timedelta(days=1), D)
    assert day == D - dt.timedelta(days=1)
    base = dict(
        order_id="O",
        store_id="S",
        supplier_id="P",
        order_value=1.0,
        quality_gate_passed=True,
        allows_auto_order=True,
        lines=[LineFacts("I", 10, usual_qty=10, interval_width=0.5)],
        business_date=D,
    )
    rules = load_rules()
    assert evaluate(OrderFacts(snapshot_age_hours=3.5, snapshot_date=D, **base), rules) == []
    assert "stock_snapshot_stale" in evaluate(
        OrderFacts(snapshot_age_hours=27.5, snapshot_date=D - dt.timedelta(days=1), **base), rules
    )
    assert snapshot_freshness(None, D) == (None, None)


def test_usual_quantity_fallbacks():
    from replenish.database import engine

    e = engine()
    with e.connect() as c:
        if not c.execute(
            text(
                "SELECT to_regclass('staging.stg_mms__purchase_orders') IS NOT NULL "
                "AND to_regclass('marts.fct_daily_demand') IS NOT NULL "
                "AND (SELECT relkind = 'r' FROM pg_class WHERE oid = to_regclass('staging.stg_mms__purchase_orders'))"
            )
        ).scalar():
            pytest.skip("warehouse not built")
        c.rollback()
        tx = c.begin()  # everything below is rolled back: the warehouse is left untouched
        try:
            from replenish.orders.store import ensure_schema

            ensure_schema(c)
            store, item = "9" + str(uuid.uuid4().int % 10**6), "7" + str(uuid.uuid4().int % 10**6)
            dd = dt.date(2019, 4, 30)  # a Tuesday
            # 1) no history at all -> new item
            assert _usual(c, store, "1", item, dd, D) == (None, True)
            # 2) sales only -> mean daily sales x coverage days
            for k, q in enumerate([10, 20, 30]):
                c.execute(
                    text(
                        "INSERT INTO marts.fct_daily_demand (store_id, item_id, demand_date, units_sold) "
                        "VALUES (:s, :i, :d, :q)"
                    ),
                    {"s": int(store), "i": int(item), "d": D - dt.timedelta(days=k), "q": q},
                )
            assert _usual(c, store, "1", item, dd, D, coverage_days=2) == (40.0, False)
            # 3) retailer PO history (the latest state per line, as dbt stages it): same weekday preferred
            rows = [("A", dt.date(2019, 4, 23), 50), ("B", dt.date(2019, 4, 16), 70), ("C", dt.date(2019, 4, 27), 500)]
            for po, due, q in rows:
                c.execute(
                    text("""INSERT INTO staging.stg_mms__purchase_orders (po_id, line_no, store_id, supplier_id,
                    item_id, order_date, due_date, due_weekday, quantity, status, last_seen_date) VALUES (:p, 1, :s, 1,
                    :i, :od, :dd, extract(isodow FROM CAST(:dd AS date)), :q, 'received', :dd)"""),
                    {"p": po + store, "s": int(store), "i": int(item), "od": due - dt.timedelta(days=1), "dd": due,
                     "q": q},
                )
            # ordered after the business date: not history yet
            c.execute(
                text("""INSERT INTO staging.stg_mms__purchase_orders (po_id, line_no, store_id, supplier_id, item_id,
                order_date, due_date, due_weekday, quantity, status, last_seen_date) VALUES (:p, 1, :s, 1, :i, :od, :od,
                extract(isodow FROM CAST(:od AS date)), 999, 'open', :od)"""),
                {"p": "L" + store, "s": int(store), "i": int(item), "od": D + dt.timedelta(days=1)},
            )
            assert _usual(c, store, "1", item, dd, D) == (60.0, False)  # Tuesdays 50, 70
            assert _usual(c, store, "1", item, dt.date(2019, 5, 1), D) == (
                206.66666666666666,
                False,
            )  # no Wednesday -> last 4
        finally:
            tx.rollback()

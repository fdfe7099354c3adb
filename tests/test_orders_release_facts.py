import datetime as dt
import uuid

import pytest
from sqlalchemy import text

from replenish.orders.release import LineFacts, OrderFacts, evaluate, load_rules
from replenish.orders.release_facts import LineKey, new_items, snapshot_freshness

D = dt.date(2019, 4, 29)


def test_snapshot_fresh_vs_business_date_not_wall_clock():
    snap = dt.datetime(2019, 4, 29, 18, 30, tzinfo=dt.UTC)  # 20:30 Berlin on D
    age, day = snapshot_freshness(snap, D)  # wall clock years later: irrelevant
    assert day == D and age is not None and 3 <= age <= 4
    age, day = snapshot_freshness(snap - dt.timedelta(days=1), D)
    assert day == D - dt.timedelta(days=1)
    base = dict(
        order_id="O",
        store_id=1,
        supplier_id=1,
        order_value=1.0,
        quality_gate_passed=True,
        allows_auto_order=True,
        lines=[LineFacts(1, 10)],
        business_date=D,
    )
    rules = load_rules()
    assert evaluate(OrderFacts(snapshot_age_hours=3.5, snapshot_date=D, **base), rules) == []
    assert "stock_snapshot_stale" in evaluate(
        OrderFacts(snapshot_age_hours=27.5, snapshot_date=D - dt.timedelta(days=1), **base), rules
    )
    assert snapshot_freshness(None, D) == (None, None)


def test_new_item_is_one_without_four_weeks_of_sales():
    from replenish.database import engine

    with engine().connect() as c:
        if not c.execute(text("SELECT to_regclass('marts.fct_daily_demand') IS NOT NULL")).scalar():
            pytest.skip("warehouse not built")
        c.rollback()
        tx = c.begin()  # everything below is rolled back: the warehouse is left untouched
        try:
            store, old, new = (900_000 + uuid.uuid4().int % 10**5 for _ in range(3))
            for item, first in ((old, D - dt.timedelta(days=40)), (new, D - dt.timedelta(days=10))):
                c.execute(
                    text("INSERT INTO marts.fct_daily_demand (store_id, item_id, demand_date, units_sold) "
                         "VALUES (:s, :i, :d, 5)"),
                    {"s": store, "i": item, "d": first},
                )
            keys = [LineKey(store, 1, i, D + dt.timedelta(days=2)) for i in (old, new, 12345678)]
            assert new_items(c, keys, D) == [False, True, True]
        finally:
            tx.rollback()

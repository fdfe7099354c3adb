"""replenish.data: replay invariants, determinism and the export contract on a small synthetic panel."""

from __future__ import annotations

import csv
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from replenish.data.bakery import PANEL_COLUMNS
from replenish.data.exports import COLUMNS, FILES, write_exports
from replenish.data.retailer import build_retailer
from replenish.extract.contract import ENTITIES


def _panel(n_days: int = 120, stores=(2, 3, 40), seed: int = 7) -> pd.DataFrame:
    """A panel in the ddop schema: noisy weekly demand, a few closed days, two holiday regions."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2016-01-02", periods=n_days, freq="D")
    base = {101: 300.0, 109: 40.0, 110: 80.0}
    rows = []
    labels = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
    for d in dates:
        for s in stores:
            school = int(s >= 40 and d.month == 2)
            rain, temp = float(rng.gamma(1.0, 2.0)), float(rng.normal(5, 5))
            for i, b in base.items():
                closed = rng.random() < 0.04
                dem = 0.0 if closed else float(rng.poisson(b * (1.3 if d.dayofweek == 5 else 1.0)
                                                          * rng.lognormal(0, 0.25)))
                rows.append((d, s, i, dem, labels[(d.dayofweek - 1) % 7], int(d.day == 6 and d.month == 1), 0,
                             school, rain, temp, int(d.isocalendar()[1] % 5 == 0), 0))
    return pd.DataFrame(rows, columns=PANEL_COLUMNS)


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return _panel()


@pytest.fixture(scope="module")
def retailer(panel):
    return build_retailer(panel, seed=123)


def test_deterministic_for_a_seed(panel, retailer):
    again = build_retailer(panel, seed=123)
    pd.testing.assert_frame_equal(retailer.daily, again.daily)
    pd.testing.assert_frame_equal(retailer.purchase_orders, again.purchase_orders)
    pd.testing.assert_frame_equal(retailer.weather_forecasts, again.weather_forecasts)
    pd.testing.assert_frame_equal(retailer.stores, again.stores)
    other = build_retailer(panel, seed=124)
    assert not other.weather_forecasts.equals(retailer.weather_forecasts)


def test_stock_conservation(retailer):
    d = retailer.daily.sort_values(["store_id", "item_id", "date"])
    assert (d["opening"] + d["received"] == d["sales"] + d["waste"] + d["closing_after"]).all()
    assert (d["closing_after"] == d["closing"] - d["waste"]).all()
    prev = d.groupby(["store_id", "item_id"])["closing_after"].shift()
    assert (prev.dropna() == d.loc[prev.notna(), "opening"]).all()
    assert (d["sales"] <= d["demand"]).all() and (d[["sales", "waste", "closing"]] >= 0).all().all()
    # received = goods receipts of that day
    gr = retailer.goods_receipts.groupby(["received_date", "store_id", "item_id"])["quantity"].sum()
    rec = d.set_index(["date", "store_id", "item_id"])["received"]
    assert (gr.reindex(rec.index, fill_value=0) == rec).all()


def test_stockouts_and_waste_occur(retailer):
    d = retailer.daily
    stockout = (d["closing"] == 0) & (d["demand"] > d["sales"])
    assert 0.005 < stockout.mean() < 0.6
    assert d["waste"].sum() > 0
    assert (d.loc[d["item_id"] == 109, "waste"] >= 0).all()
    po = retailer.purchase_orders
    assert (po["quantity"] > 0).all()
    terms = retailer.item_suppliers.set_index("item_id")
    assert ((po["quantity"] % po["item_id"].map(terms["pack_size"])) == 0).all()
    bread = po[po["item_id"] == 109]
    assert set(bread["order_date"].dt.dayofweek + 1) <= {1, 3, 5}
    assert ((bread["due_date"] - bread["order_date"]).dt.days == 2).all()


def test_exports_match_contract(retailer, tmp_path):
    start, end = dt.date(2016, 2, 1), dt.date(2016, 2, 10)
    res = write_exports(retailer, tmp_path, start=start, end=end, tz="Europe/Berlin")
    assert res["days_written"] == 10
    specs = {e.relative_path: e for e in ENTITIES}
    assert set(FILES) == set(specs)
    receipts: set[str] = set()
    for day in sorted(p for p in tmp_path.iterdir() if not p.name.startswith(".")):
        for name in FILES:
            with open(day / name, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            assert rows[0] == list(specs[name].column_names) == COLUMNS[name], name
            if name == "pos/sales_lines.csv":
                ids = [r[0] for r in rows[1:]]
                assert all(i.startswith("Z-") for i in ids)
                assert receipts.isdisjoint(ids) and len(set(ids)) == len(ids)
                receipts.update(ids)
                assert all(r[3].endswith("+01:00") for r in rows[1:])
                assert all(float(r[4]) > 0 for r in rows[1:])
    assert receipts
    # idempotent: complete days are skipped
    again = write_exports(retailer, tmp_path, start=start, end=end, tz="Europe/Berlin")
    assert again["days_written"] == 0 and again["days_skipped"] == 10


def test_weather_forecast_error_grows_with_lead_time(retailer):
    """The exported forecasts are forecasts (error growing with the lead), not the actuals plus a fixed noise."""
    m = retailer.weather_forecasts.merge(retailer.weather, on=["store_id", "weather_date"], suffixes=("_fc", ""))
    lead = (m["weather_date"] - m["issue_date"]).dt.days
    t_err = (m["temperature_c_fc"] - m["temperature_c"]).abs().groupby(lead).mean()
    r_err = (m["rain_mm_fc"] - m["rain_mm"]).abs().groupby(lead).mean()
    assert set(lead) == set(range(1, 15))
    for err in (t_err, r_err):
        assert err[1] < err[4] < err[7] < err[14]

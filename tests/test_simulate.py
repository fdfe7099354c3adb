"""Replenishment simulator: conservation, no look-ahead, a hand-computed case, the CLI document.

Small on purpose: 2 stores x 2 items (a 1-day and a 5-day shelf life), ~10 days, the real LightGBM with the
fast test configuration, history trimmed to a year so the weekly fits stay quick.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replenish.simulate.engine import simulate
from replenish.simulate.inventory import Inventory
from replenish.simulate.metrics import conservation, summarize
from replenish.simulate.policies import DayView, MinMax, Ours, PerfectForesight, Policy, SameAsLastWeek, _plain_lines
from replenish.simulate.report import format_table
from replenish.simulate.world import PAD, Masters, Opportunity, Terms, World, build_world

START, END = dt.date(2019, 3, 4), dt.date(2019, 3, 10)   # Monday .. Sunday: one weekly fit
STORES, ITEMS = [2, 3], [101, 109]


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    from replenish.data.bakery import load_panel

    p = load_panel()
    return p[p["item_id"].isin(ITEMS) & (p["date"] >= "2018-06-01")].reset_index(drop=True)


def _policies(world: World, oracle: bool = True) -> list[Policy]:
    from support.forecast import fast_config

    m = world.masters
    out: list[Policy] = [Ours(m, fast_config()), MinMax(m), SameAsLastWeek(m)]
    return out + [PerfectForesight(m, world.demand)] if oracle else out


@pytest.fixture(scope="module")
def small(panel):
    """One simulation shared by the tests; every policy is wrapped in a spy that checks what it is shown."""
    from support.forecast import fast_config

    world = build_world(panel, START, END, seed=11, stores=STORES)
    m = world.masters
    inner = [_CheckedOurs(m, fast_config()), MinMax(m), SameAsLastWeek(m), PerfectForesight(m, world.demand)]
    spies = [_Spy(p, m) for p in inner]
    return world, simulate(world, spies), spies


# ------------------------------------------------------------------ conservation
def test_conservation_every_day_and_over_the_window(small):
    _, res, _ = small
    d = res.daily
    assert (d["opening"] + d["received"] == d["sales"] + d["waste"] + d["closing_after"]).all()
    assert (d["sales"] == np.minimum(d["demand"], d["available"])).all()
    assert (d["lost"] == d["demand"] - d["sales"]).all()
    assert (d[["sales", "waste", "closing_after", "lost"]] >= 0).all().all()
    assert set(conservation(res).values()) == {0}
    # stock carried from one day to the next is exactly the closing stock after write-off
    for _, g in d.groupby(["policy", "s"]):
        assert (g["opening"].to_numpy()[1:] == g["closing_after"].to_numpy()[:-1]).all()


def test_perishables_never_carry_stock_overnight(small):
    _, res, _ = small
    d = res.daily
    assert (d.loc[d["item_id"] == 101, "closing_after"] == 0).all()


def test_summary_has_every_policy_and_figure(small):
    doc = summarize(small[1])
    assert [p["policy"] for p in doc["policies"]] == ["ours", "min_max", "same_as_last_week", "perfect_foresight"]
    for p in doc["policies"]:
        for k in ("waste_units", "waste_pct_of_delivered", "lost_sales_units", "fill_rate", "stockout_days",
                  "avg_stock", "orders", "touchless_rate", "cost", "by_store", "by_item", "by_store_item"):
            assert k in p, k
        assert p["cost"] == pytest.approx(p["lost_margin"] + p["waste_cost"], abs=0.011)
        assert {r["item_id"] for r in p["by_item"]} == set(ITEMS)
    assert {"met", "gap_to_perfect_foresight"} <= set(doc["target"])
    # what each item class asks for: 1 - the newsvendor ratio (price - cost) / price for the 1-day items, 1 - the
    # service level for the rye bread; beside what ours delivered on the days with demand
    asked = {i: r["asked"] for i, r in doc["target"]["stockout_share_by_item"].items()}
    assert asked == {101: pytest.approx(0.12 / 0.40), 109: pytest.approx(0.05)}     # the fixture's two items
    ours = doc["policies"][0]
    for r in ours["by_item"]:
        row = doc["target"]["stockout_share_by_item"][r["item_id"]]
        assert row["delivered"] == r["stockout_share"]
        assert row["within"] == (abs(row["delivered"] - row["asked"]) <= 0.03)
    assert doc["target"]["stockout_within_3_points"] == all(
        r["within"] for r in doc["target"]["stockout_share_by_item"].values())
    assert "within 3 points of what each item asks for" in format_table(doc)
    json.dumps(doc)


# ------------------------------------------------------------------ no look-ahead
class _Spy(Policy):
    """Wraps a policy and checks every view it gets: nothing dated after the business day."""

    def __init__(self, inner: Policy, masters: Masters) -> None:
        self.inner, self.m, self.name, self.adjustable = inner, masters, inner.name, inner.adjustable
        self.days: list[int] = []

    def propose(self, view: DayView):
        assert view.sales.shape[0] == view.t + 1 and view.stockout.shape[0] == view.t + 1
        assert (view.on_order["due"] > view.t).all()
        assert all(o.delivery > view.t for o in view.opportunities.values())
        self.days.append(view.t)
        return self.inner.propose(view)


class _CheckedOurs(Ours):
    """The production forecast path, asserting what reaches the model: no sales after the day, and weather only
    as forecast on the day (or the two days before), never a forecast issued later nor the actual."""

    checked = 0

    def forecasts(self, view: DayView):
        self._maybe_train(view)
        real_predict = type(self.model).predict.__get__(self.model)

        def predict(frame, origins, horizons=None, weather=None):
            f = frame
            assert f.loc[f["y"].notna(), "date"].max() <= view.date
            assert weather is not None and weather["issue_date"].max() == view.date
            issued = self.m.weather_forecasts
            issued = issued[issued["issue_date"] == view.date]
            chk = weather[weather["issue_date"] == view.date].merge(issued, on=["store_id", "weather_date"])
            assert len(chk) == len(issued) and np.allclose(chk["rain"], chk["rain_mm"])
            type(self).checked += 1
            return real_predict(frame, origins, horizons, weather=weather)

        self.model.predict = predict
        return super().forecasts(view)


def test_policies_only_see_the_past(small):
    world, _, spies = small
    n = world.masters.n_days
    assert all(s.days == list(range(n)) for s in spies)
    assert _CheckedOurs.checked == n
    # the model for business date D was trained on data through the Sunday before D (forecast_training DAG)
    assert spies[0].inner.fits == [{**spies[0].inner.fits[0], "train_end": "2019-03-03"}]


def test_scrambling_the_future_demand_changes_no_earlier_order(panel, small):
    world, res, _ = small
    k = 3                                     # demand after day k (2019-03-07) is replaced by noise
    rng = np.random.default_rng(0)
    demand = world.demand.copy()
    demand[k + 1:] = rng.integers(0, 1000, demand[k + 1:].shape)
    other = World(masters=world.masters, demand=demand, retailer_seed=world.retailer_seed)
    res2 = simulate(other, _policies(other, oracle=False))
    cols = ["policy", "t", "s", "delivery", "proposed_qty", "final_qty", "auto"]
    a = res.orders[(res.orders["t"] <= k) & (res.orders["policy"] != "perfect_foresight")][cols]
    b = res2.orders[res2.orders["t"] <= k][cols]
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    # ... and later orders do react (the scramble was real)
    a = res.orders[(res.orders["t"] > k) & (res.orders["policy"] != "perfect_foresight")][cols]
    b = res2.orders[res2.orders["t"] > k][cols]
    assert not a.reset_index(drop=True).equals(b.reset_index(drop=True))


def test_parallel_weekly_fit_equals_the_production_fit():
    """``ours`` fits each quantile in its own thread with one LightGBM thread (the runtime fix for shared
    cores): same configuration but the thread count, same training rows, the same forecasts as the
    production ``ForecastModel.fit``."""
    from support.forecast import fast_config, small_frame

    from ml.model import ForecastModel
    from replenish.simulate.training import fit_weekly

    frame, cfg, end = small_frame(), fast_config(), pd.Timestamp("2018-05-27")
    assert cfg.lgbm.num_threads > 1
    prod, ours = ForecastModel(cfg).fit(frame, end_date=end), fit_weekly(cfg, frame, end)
    assert ours.cfg.lgbm.num_threads == 1 and ours.cfg.model_copy(update={"lgbm": cfg.lgbm}) == cfg
    assert (ours.n_train_rows, ours.train_start, ours.train_end) == (prod.n_train_rows, prod.train_start,
                                                                     prod.train_end)
    assert sorted(ours.boosters) == sorted(prod.boosters) == cfg.quantiles
    origins = [end, end + pd.Timedelta(days=14)]
    pd.testing.assert_frame_equal(ours.predict(frame, origins), prod.predict(frame, origins))


# ------------------------------------------------------------------ hand-computed case
class _Constant(Policy):
    name = "constant"

    def __init__(self, qty: int) -> None:
        self.qty = qty

    def propose(self, view: DayView):
        ss = np.array(sorted(view.opportunities), dtype=np.int64)
        return _plain_lines(ss, view.opportunities, np.full(len(ss), self.qty))


def _tiny_world(demand: list[int], first_delivery: int) -> World:
    """One store x item, shelf life 1, pack 1, ordered daily for the next day; price 1.00, cost 0.40."""
    n = len(demand)
    start = pd.Timestamp("2019-03-04")
    days = pd.date_range(start, periods=n + PAD)
    terms = Terms(supplier_id=np.array([1]), pack=np.array([1]), moq=np.array([0]), max_qty=np.array([1000]),
                  lead=np.array([1]), shelf_life=np.array([1]), price=np.array([1.0]), cost=np.array([0.4]),
                  service_level=np.array([0.9]), min_order_value=np.array([0.0]), order_weekdays=("1|2|3|4|5|6|7",),
                  category=("Broetchen",), allows_auto=np.array([True]))
    arrivals = np.zeros((n + PAD, 1), dtype=np.int64)
    arrivals[0, 0] = first_delivery
    masters = Masters(
        start=start, end=days[n - 1], days=days, n_days=n, keys=pd.DataFrame({"store_id": [1], "item_id": [101]}),
        terms=terms, holidays=frozenset(), opportunities={t: {0: Opportunity(t + 1, t + 2)} for t in range(n)},
        history=pd.DataFrame(), drivers=pd.DataFrame({"store_id": [1], "item_id": [101], "date": [start],
                                                      "promotion": [0.0]}),
        weather_forecasts=pd.DataFrame(), history_sales=np.full((56, 1), 10.0),
        history_orders=pd.DataFrame({"s": [0], "due": [-1], "qty": [10]}),
        initial_lots=np.zeros((1, 1), dtype=np.int64), initial_arrivals=arrivals,
        short_u=np.ones((n + PAD, 1)), short_frac=np.ones((n + PAD, 1)), short_rate=0.0)
    return World(masters=masters, demand=np.array(demand, dtype=np.int64)[:, None], retailer_seed=0)


def test_hand_computed_case():
    # demand 8, 12, 10, 5; 10 delivered on day 0 from before the window; "constant" orders 10 every night.
    # day 0: 10 on the shelf, sells 8, wastes 2 | day 1: 10, sells 10, loses 2 | day 2: 10, sells 10
    # day 3: 10, sells 5, wastes 5. Perfect foresight orders 12, 10, 5 (then 0 after the window): only the
    # 2 units of day 0 (ordered before the window) are wasted.
    world = _tiny_world([8, 12, 10, 5], first_delivery=10)
    doc = summarize(simulate(world, [_Constant(10), PerfectForesight(world.masters, world.demand)]))
    const, pf = doc["policies"][-1], doc["policies"][0]
    assert (pf["policy"], const["policy"]) == ("perfect_foresight", "constant")
    assert const["demand"] == 35 and const["sales"] == 33 and const["lost_sales_units"] == 2
    assert const["delivered"] == 40 and const["waste_units"] == 7 and const["waste_pct_of_delivered"] == 17.5
    assert const["stockout_days"] == 1 and const["fill_rate"] == round(33 / 35, 4)
    assert const["avg_stock"] == 10.0 and const["orders"] == 4          # the day-3 order delivers after the window
    assert const["lost_margin"] == pytest.approx(2 * 0.6) and const["waste_cost"] == pytest.approx(7 * 0.4)
    assert const["cost"] == pytest.approx(4.0)
    assert pf["sales"] == 35 and pf["lost_sales_units"] == 0 and pf["waste_units"] == 2
    assert pf["cost"] == pytest.approx(0.8)
    assert doc["conservation_max_residual_units"] == {"perfect_foresight": 0, "constant": 0}


def test_the_stockout_share_counts_the_days_with_demand_only():
    """A closed day (no demand) cannot run out: one stock-out in three days with demand is a third, not a quarter."""
    world = _tiny_world([8, 12, 0, 10], first_delivery=10)
    const = summarize(simulate(world, [_Constant(10)]))["policies"][0]
    assert const["stockout_days"] == 1 and const["demand_days"] == 3
    assert const["stockout_share"] == round(1 / 3, 4)
    assert const["by_item"][0]["stockout_share"] == round(1 / 3, 4)


def test_inventory_fifo_and_expiry_by_hand():
    # shelf life 2: yesterday's 5 (expiring tonight) are sold before today's delivery of 10
    inv = Inventory(np.array([[5, 0]]), np.array([2]))
    f = inv.day(np.array([10]), np.array([7]))
    assert (f.sales[0], f.waste[0], f.closing_after[0]) == (7, 0, 8)
    f = inv.day(np.array([0]), np.array([3]))      # the 8 left expire tonight: sell 3, waste 5
    assert (f.sales[0], f.waste[0], f.closing_after[0], f.lost[0]) == (3, 5, 0, 0)
    f = inv.day(np.array([0]), np.array([4]))
    assert (f.sales[0], f.lost[0], f.closing[0]) == (0, 4, 0)


def test_open_orders_before_the_delivery_by_hand():
    from replenish.simulate.policies import open_before_delivery

    oo = pd.DataFrame({"s": [0, 0, 0, 2, 3], "due": [5, 7, 9, 6, 6], "qty": [10, 20, 40, 5, 7]})
    ss, dl, life = np.array([0, 2, 4]), np.array([9, 6, 8]), np.array([3, 1, 1, 1, 1])
    on_order, expiring = open_before_delivery(oo, ss, dl, life)
    # series 0: due 5 and 7 arrive before the delivery on day 9; the one due 5 has expired by then (5 + 3 <= 9)
    # series 2: due 6 is not before the delivery on 6; series 3 has no opportunity; series 4 has no open order
    assert on_order.tolist() == [30.0, 0.0, 0.0] and expiring.tolist() == [10.0, 0.0, 0.0]
    assert [a.tolist() for a in open_before_delivery(oo.iloc[:0], ss, dl, life)] == [[0.0] * 3] * 2


class _Overorder(_Constant):
    """Orders ``qty`` against a forecast of 10 +- 2 a day: an improbable quantity under its own distribution."""

    name = "overorder"

    def propose(self, view: DayView):
        lines = super().propose(view)
        return lines.assign(sell_p10=8.0, sell_p50=10.0, sell_p90=12.0, shelf_p10=8.0)


def test_doubtful_lines_capped_or_reviewed(panel):
    from replenish.orders.release import load_rules, parse_rules

    world = _tiny_world([8, 12, 10, 5], first_delivery=10)
    # default rules: the 20-unit line is capped to a quantity the forecast makes plausible and goes out touchless
    o = simulate(world, [_Overorder(20)]).orders
    assert o["auto"].all() and (o["proposed_qty"] == 20).all() and (o["final_qty"] < 20).all()
    assert (o["final_qty"] >= 10).all()
    # rules that hold doubtful lines: review -> the reviewer halves it to 10
    rules = load_rules()
    hold = parse_rules({"version": "t", "defaults": {**rules.defaults, "on_doubtful_line": "hold"}})
    o = simulate(world, [_Overorder(20)], adjust=0.5, rules=hold).orders
    assert (~o["auto"]).all() and (o["final_qty"] == 10).all() and (o["proposed_qty"] == 20).all()
    assert o["reasons"].str.contains("quantity_improbable_high:101").all()


def test_reviewer_bad_input(panel):
    world = _tiny_world([8, 12, 10, 5], first_delivery=10)
    with pytest.raises(ValueError, match="adjust"):
        simulate(world, [_Constant(20)], adjust=0)
    with pytest.raises(ValueError, match="end"):
        build_world(panel, START, dt.date(2019, 5, 3), seed=1)
    with pytest.raises(ValueError, match="stores"):
        build_world(panel, START, END, seed=1, stores=[999])


# ------------------------------------------------------------------ CLI
@pytest.mark.slow
def test_cli_json_document(tmp_path):
    env = dict(os.environ)
    cmd = [str(Path(sys.executable).with_name("replenish")), "simulate", "--start", "2019-03-04", "--end",
           "2019-03-06", "--stores", "2", "--seed", "5", "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(p.stdout)
    assert [x["policy"] for x in doc["policies"]] == ["ours", "min_max", "same_as_last_week", "perfect_foresight"]
    assert doc["seed"] == 5 and doc["stores"] == 1 and doc["days"] == 3
    assert Path(doc["report_path"]).name == "simulation_2019-03-04_2019-03-06.html"
    assert "data:image/png;base64," in Path(doc["report_path"]).read_text()
    bad = subprocess.run(cmd[:2] + ["--start", "2019-13-01"], capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "--start" in bad.stderr


def test_table_and_html_page(tmp_path):
    from replenish.simulate.report import write_html

    world = _tiny_world([8, 12, 10, 5], first_delivery=10)
    res = simulate(world, [_Constant(10), PerfectForesight(world.masters, world.demand)])
    doc = summarize(res)
    table = format_table(doc)
    assert "constant" in table and "perfect_foresight" in table and "item 101" in table
    page = write_html(doc, res, tmp_path / "sim.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "Per store" in page

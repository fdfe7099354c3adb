import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from replenish.orders import calendar as cal
from replenish.orders.proposals import compute_proposals
from replenish.orders.quantiles import quantile
from replenish.orders.release import (
    LineFacts,
    LineRisk,
    OrderFacts,
    RuleConfigError,
    decide,
    evaluate,
    load_rules,
    parse_rules,
)

D = dt.date(2024, 3, 4)  # Monday


def _line(**kw):
    base = dict(
        store_id=1,
        item_id=1,
        supplier_id=1,
        order_date=D,
        as_of_date=D,
        delivery_date=D + dt.timedelta(days=1),
        next_delivery_date=D + dt.timedelta(days=2),
        on_hand_qty=0.0,
        on_order_qty=0.0,
        pack_size=1,
        moq=0,
        max_order_qty=np.nan,
        service_level=0.5,
        shelf_life_days=30,
        unit_price=2.0,
        unit_cost=1.0,
        min_order_value=0.0,
    )
    base.update(kw)
    return base


def _fc(store=1, item=1, days=range(1, 8), p50=10.0, p10=None, p90=None):
    return pd.DataFrame(
        [
            {
                "store_id": store,
                "item_id": item,
                "target_date": D + dt.timedelta(days=d),
                "p10": p10 if p10 is not None else p50 * 0.5,
                "p50": p50,
                "p90": p90 if p90 is not None else p50 * 1.5,
            }
            for d in days
        ]
    )


def run(lines, fc=None, **kw):
    return compute_proposals(pd.DataFrame(lines), _fc() if fc is None else fc, **kw)


# --- calendar ---------------------------------------------------------------------------------------------
def test_calendar_not_an_order_day():
    assert cal.opportunity(1, 1, D + dt.timedelta(days=1), order_weekdays="1|3|5", lead_time_days=1) is None


def test_calendar_coverage_across_weekdays():
    o = cal.opportunity(1, 1, D, order_weekdays="1|3|5", cutoff_time="10:30", lead_time_days=1)
    assert (o.delivery_date, o.next_delivery_date, o.coverage_days) == (dt.date(2024, 3, 5), dt.date(2024, 3, 7), 2)
    f = cal.opportunity(1, 1, dt.date(2024, 3, 8), order_weekdays="1|3|5", lead_time_days=1)
    assert (f.delivery_date, f.next_delivery_date) == (dt.date(2024, 3, 9), dt.date(2024, 3, 12))


def test_calendar_cutoff_is_berlin_local():
    o = cal.opportunity(1, 1, D, order_weekdays="1", cutoff_time="10:30", lead_time_days=2)
    assert o.cutoff_at.utcoffset() == dt.timedelta(hours=1)  # CET in March before DST
    assert o.is_past_cutoff(dt.datetime(2024, 3, 4, 9, 31, tzinfo=dt.UTC))
    assert not o.is_past_cutoff(dt.datetime(2024, 3, 4, 9, 29, tzinfo=dt.UTC))
    s = cal.opportunity(1, 1, dt.date(2024, 7, 1), order_weekdays="1", cutoff_time="10:30", lead_time_days=2)
    assert s.cutoff_at.utcoffset() == dt.timedelta(hours=2)


def test_calendar_holiday_shifts_delivery_and_window():
    # Good Friday 2024-03-29 and Easter Monday 2024-04-01
    hol = {dt.date(2024, 3, 29), dt.date(2024, 4, 1)}
    o = cal.opportunity(1, 1, dt.date(2024, 3, 28), order_weekdays=range(1, 8), lead_time_days=1, holidays=hol)
    assert o.delivery_date == dt.date(2024, 3, 30)  # Fri holiday -> Sat
    assert o.next_delivery_date == dt.date(2024, 3, 31)
    o2 = cal.opportunity(1, 1, dt.date(2024, 3, 31), order_weekdays=range(1, 8), lead_time_days=1, holidays=hol)
    assert (o2.delivery_date, o2.next_delivery_date) == (dt.date(2024, 4, 2), dt.date(2024, 4, 3))
    # the Saturday order would also deliver Apr 2 after the Monday holiday: next delivery skips the collapse
    o3 = cal.opportunity(1, 1, dt.date(2024, 3, 30), order_weekdays=range(1, 8), lead_time_days=2, holidays=hol)
    assert o3.delivery_date == dt.date(2024, 4, 2) and o3.next_delivery_date == dt.date(2024, 4, 3)


# --- quantiles ---------------------------------------------------------------------------------------------
def test_quantile_hits_anchors_and_extrapolates():
    q = quantile([4, 4, 4, 4], [10, 10, 10, 10], [20, 20, 20, 20], [0.1, 0.5, 0.9, 0.98])
    assert np.allclose(q[:3], [4, 10, 20]) and q[3] > 20


def test_window_demand_at_the_level_is_the_quantile_of_the_sum():
    """Five days of P10/P50/P90 = 5/10/15 at service level 0.9: the sum of the daily P90s (75) is the window's P90
    only if the days miss together (correlation 1); independent days give 50 + sqrt(5) x 5, in between between."""
    five = _line(next_delivery_date=D + dt.timedelta(days=6), service_level=0.9)
    qty = {rho: int(run([five], _fc(p50=10, p10=5, p90=15), day_error_correlation=rho).lines.proposed_qty[0])
           for rho in (0.0, 0.5, 1.0)}
    assert qty[1.0] == 75
    assert qty[0.0] == int(np.ceil(50 + np.sqrt(5) * 5))
    assert qty[0.0] < qty[0.5] < qty[1.0]
    # one day: the window's quantile is the day's, whatever the correlation
    one = [_line(service_level=0.9)]
    assert {int(run(one, _fc(p50=10, p10=5, p90=15), day_error_correlation=r).lines.proposed_qty[0])
            for r in (0.0, 1.0)} == {15}


def test_day_error_correlation_is_measured_from_the_backtest():
    from ml.calibration import day_error_correlation

    rng = np.random.default_rng(0)
    rows = []
    for s in range(60):
        shared = rng.normal()                   # a run's shared miss (weather, level): correlates its days
        for h in range(1, 8):
            e = 0.7 * shared + np.sqrt(1 - 0.49) * rng.normal()
            rows.append({"store_id": s, "item_id": 1, "origin": D, "horizon": h, "y": 100 + 10 * e,
                         "p10": 100 - 10 * 1.2816, "p50": 100.0, "p90": 100 + 10 * 1.2816})
    rho, pairs = day_error_correlation(pd.DataFrame(rows))
    assert pairs == 60 * 11 and 0.3 < rho < 0.7       # the true correlation is 0.49
    assert day_error_correlation(pd.DataFrame(rows[:7])) == (None, 11)


# --- rounding steps ------------------------------------------------------------------------------------------
def test_net_need_rounds_up_to_whole_units():
    r = run([_line(on_hand_qty=5.5)], _fc(p50=10.2))  # 10.2 - 5.5 = 4.7 -> 5
    assert r.lines.proposed_qty[0] == 5


def test_moq_raises_need():
    assert run([_line(on_hand_qty=7, moq=6)]).lines.proposed_qty[0] == 6  # need 3 -> MOQ 6


def test_pack_rounds_up_never_fractional():
    assert run([_line(on_hand_qty=3, moq=5, pack_size=4)]).lines.proposed_qty[0] == 8  # 7 -> 7 -> 8


def test_perishable_packs_round_to_the_nearest_multiple_at_least_one():
    def qty(p50, pack=10, shelf=1):
        return run([_line(shelf_life_days=shelf, pack_size=pack)], _fc(p50=p50)).lines.proposed_qty[0]

    # newsvendor at P50 (cr 0.5): need 14 -> 10, 15 -> 20, 3 -> one pack; nothing needed -> nothing
    assert (qty(14), qty(15), qty(3), qty(0)) == (10, 20, 10, 0)
    assert qty(14, shelf=30) == 20          # a service-level line still rounds up


def test_cap_max_order_qty_floored_to_packs():
    assert run([_line(max_order_qty=7, pack_size=3)], _fc(p50=50)).lines.proposed_qty[0] == 6


def test_cap_below_moq_gives_zero_and_flag():
    r = run([_line(max_order_qty=4, moq=5)], _fc(p50=50))
    assert r.lines.proposed_qty[0] == 0 and bool(r.lines.cap_below_moq[0])


def test_shelf_life_cap_limits_long_windows():
    r = run([_line(next_delivery_date=D + dt.timedelta(days=6), shelf_life_days=2)], _fc(p50=10))
    assert r.lines.proposed_qty[0] == 20  # 5 coverage days but only 2 sellable


def test_zero_need_orders_nothing():
    assert run([_line(on_hand_qty=100)]).lines.proposed_qty[0] == 0


def test_demand_before_delivery_and_expiry_reduce_position():
    # delivery in 2 days: 10 units sold before; on hand 25 -> position 15 -> need 10-15 <0 -> 0
    r = run(
        [_line(on_hand_qty=25, delivery_date=D + dt.timedelta(days=2), next_delivery_date=D + dt.timedelta(days=3))]
    )
    assert r.lines.proposed_qty[0] == 0
    # shelf life 1: all on hand expires, only the delivery day is covered, newsvendor cr = (2-1)/2 = 0.5 -> P50
    p = run([_line(on_hand_qty=25, shelf_life_days=1, next_delivery_date=D + dt.timedelta(days=3))])
    assert p.lines.proposed_qty[0] == 10
    e = json.loads(p.lines.explanation[0])
    assert e["rule"] == "newsvendor" and e["expiring"] == 25.0 and e["coverage_days"] == 1


def test_newsvendor_high_margin_orders_more():
    lo = run([_line(shelf_life_days=1, unit_price=1.25, unit_cost=1.0)]).lines.proposed_qty[0]  # cr 0.2
    hi = run([_line(shelf_life_days=1, unit_price=10.0, unit_cost=1.0)]).lines.proposed_qty[0]  # cr 0.9
    assert lo < 10 < hi and hi == 15


def test_explanation_has_steps_and_why():
    e = json.loads(run([_line(on_hand_qty=3, moq=5, pack_size=4)]).lines.explanation[0])
    assert e["steps"] == {
        "net_need": 7,
        "moq": [5, 7],
        "pack": [4, 8],
        "cap": [None, 8],
        "cap_below_moq": False,
        "top_up_packs": 0,
    }
    assert e["quantile"] == "P50" and e["why"].startswith("why 8:") and e["on_hand"] == 3.0


def test_mov_top_up_in_pack_steps_and_hold():
    lines = [
        _line(item_id=1, pack_size=6, min_order_value=40.0),
        _line(item_id=2, pack_size=6, min_order_value=40.0),
    ]
    fc = pd.concat([_fc(item=1, p50=10), _fc(item=2, p50=3)])
    r = run(lines, fc)  # 12 + 6 units at 1.00 = 18 < 40 -> top up
    assert r.orders.order_value_cents[0] >= 4000 and (r.lines.proposed_qty % 6 == 0).all()
    assert r.orders.mov_status[0] == "topped_up"
    h = run(lines, fc, mov_policy="hold")
    assert h.orders.mov_status[0] == "hold" and h.orders.reasons[0] == ["below_min_order_value"]


# --- release rules --------------------------------------------------------------------------------------------
# A well-behaved line: 100 +- 30 units sellable, 40 on hand, 70 ordered (cover 110 ~ P65), cheap rolls.
ROLLS = LineRisk(position=40, sell_p10=70, sell_p50=100, sell_p90=130, shelf_p10=70, pack=10, moq=0,
                 unit_cost=0.12, unit_price=0.40)


def _facts(**kw):
    base = dict(
        order_id="O",
        store_id=1,
        supplier_id=1,
        order_value=100.0,
        quality_gate_passed=True,
        snapshot_age_hours=2.0,
        allows_auto_order=True,
        lines=[LineFacts(1, 70, risk=ROLLS)],
    )
    base.update(kw)
    return OrderFacts(**base)


def test_release_all_conditions_hold():
    d = decide(_facts(), load_rules())
    assert d.released and d.caps == []


def test_release_reasons():
    rules = parse_rules({**_rules_doc(), "defaults": {**_rules_doc()["defaults"], "block_on_promotion": True}})
    promo = _facts(lines=[LineFacts(1, 70, risk=ROLLS, is_promotion=True)])
    assert decide(promo, load_rules()).released  # by default the forecast knows the promotion: judged on risk
    why = evaluate(
        _facts(
            quality_gate_passed=False,
            snapshot_age_hours=100,
            allows_auto_order=False,
            order_value=1e6,
            lines=[LineFacts(1, 70, risk=ROLLS, is_promotion=True), LineFacts(2, 5, is_new_item=True)],
        ),
        rules,
    )
    assert {
        "quality_gate_blocked",
        "stock_snapshot_stale",
        "supplier_manual_only",
        "order_value_over_limit",
        "promotion:1",
        "new_item:2",
    } <= set(why)


def test_pack_and_moq_rounding_is_not_a_doubt():
    # 2 units a day, a case of 24: the smallest orderable quantity overshoots P99, which the supplier imposes
    slow = LineRisk(position=0, sell_p10=1, sell_p50=2, sell_p90=4, shelf_p10=30, pack=24, moq=0,
                    unit_cost=0.5, unit_price=1.0)
    assert decide(_facts(lines=[LineFacts(1, 24, risk=slow)]), load_rules()).released


def test_doubtful_line_is_capped_or_held():
    rules = load_rules()
    # 400 units of rolls where at most ~180 sell: improbable, and ~40 EUR of waste if demand comes in at P10
    d = decide(_facts(lines=[LineFacts(1, 400, risk=ROLLS)]), rules)
    assert d.released and len(d.caps) == 1
    cap = d.caps[0]
    assert cap.from_qty == 400 and cap.to_qty % 10 == 0 and 60 <= cap.to_qty < 400
    assert ROLLS.waste_at_risk(cap.to_qty) <= 40 and cap.to_qty + ROLLS.position >= ROLLS.sell_p50
    held = parse_rules({**_rules_doc(), "defaults": {**_rules_doc()["defaults"], "on_doubtful_line": "hold"}})
    why = evaluate(_facts(lines=[LineFacts(1, 400, risk=ROLLS)]), held)
    assert "quantity_improbable_high:1" in why


def test_money_at_risk_judges_expensive_lines():
    rules = load_rules()
    # the same shape for a 30 EUR item: a normal quantity still puts too much money at stake -> review
    dear = LineRisk(position=40, sell_p10=70, sell_p50=100, sell_p90=130, shelf_p10=70, pack=10, moq=0,
                    unit_cost=30.0, unit_price=45.0)
    d = decide(_facts(lines=[LineFacts(1, 70, risk=dear)]), rules)
    assert not d.released and "line_risk_short:1" in d.reasons
    # too little: the shelf runs empty even if demand comes in low
    empty = LineRisk(position=0, sell_p10=70, sell_p50=100, sell_p90=130, shelf_p10=70, pack=10, moq=0,
                     unit_cost=0.12, unit_price=0.40)
    short = decide(_facts(lines=[LineFacts(1, 0, risk=empty)]), rules)
    assert "quantity_improbable_low:1" in short.reasons


def test_line_without_distribution_is_not_judged_on_risk():
    assert decide(_facts(lines=[LineFacts(1, 10_000)]), load_rules()).released


def _rules_doc() -> dict:
    import yaml

    from replenish.orders.release import RULES_PATH

    return yaml.safe_load(RULES_PATH.read_text())


def test_malformed_rules_name_the_rule():
    good = {"version": 1, "defaults": dict(load_rules().defaults), "overrides": []}
    bad = dict(
        good, overrides=[{"name": "dairy-strict", "match": {"category": "dairy"}, "set": {"max_line_risk": "ten"}}]
    )
    with pytest.raises(RuleConfigError, match="dairy-strict"):
        parse_rules(bad)
    with pytest.raises(RuleConfigError, match="on_cutoff"):
        parse_rules(dict(good, defaults=dict(good["defaults"], on_cutoff="maybe")))
    with pytest.raises(RuleConfigError, match="version"):
        parse_rules({"defaults": good["defaults"]})
    with pytest.raises(RuleConfigError, match="'x'.*unknown setting"):
        parse_rules(dict(good, overrides=[{"name": "x", "match": {"store_id": "S"}, "set": {"bogus": 1}}]))


def test_absurd_forecast_orders_nothing_and_is_flagged():
    fc = _fc(p50=1e299, p10=1e299, p90=float("inf"))
    r = run([_line()], fc)
    assert r.lines.proposed_qty.tolist() == [0] and r.lines.forecast_flagged.tolist() == [True]


def test_the_requested_level_is_the_newsvendor_ratio_for_fresh_goods_and_the_service_level_otherwise():
    import numpy as np

    from replenish.orders.proposals import requested_level

    level = requested_level(np.array([40, 40, 0]), np.array([12, 12, 5]), np.array([0.95, 0.95, 0.9]),
                            np.array([True, False, True]))
    np.testing.assert_allclose(level, [0.70, 0.95, 0.01])     # no price: the lowest level, never a division by 0

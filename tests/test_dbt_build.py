"""dbt warehouse end to end: fixture exports -> raw loader -> ``dbt build`` -> marts (slow: ~1-2 min).

Runs in its own database (``replenish_dbt_test`` on the test server) with its own state folder, so
it never touches the demo warehouse or other tests' tables.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from replenish import migrations
from replenish.database import database_url, sqlalchemy_url
from replenish.settings import Settings, get_settings

extract = pytest.importorskip("replenish.extract")
extract_fixtures = pytest.importorskip("support.extract_fixtures")

TEST_DB = "replenish_dbt_test"
D = date(2019, 4, 29)  # a Monday
DAYS = [D - timedelta(days=2), D - timedelta(days=1), D]
MARTS = ("fct_daily_demand", "fct_demand_drivers", "dim_calendar", "dim_stores", "dim_items", "dim_suppliers",
         "dim_replenishment_parameters", "fct_inventory_position", "fct_open_orders")


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    base = database_url()
    admin = create_engine(sqlalchemy_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": TEST_DB}).first():
            conn.execute(text(f'DROP DATABASE "{TEST_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{TEST_DB}"'))
    admin.dispose()
    url = base.rsplit("/", 1)[0] + "/" + TEST_DB
    state = tmp_path_factory.mktemp("dbt_state")
    settings = Settings(home=get_settings().home, state_dir=state, database_url=url)
    eng = create_engine(sqlalchemy_url(url), future=True)
    root = state / "exports"
    for d in DAYS:
        extract_fixtures.write_export_day(root, d)
    migrations.upgrade(eng)
    extract.load_days(eng, extract.CsvExportConnector(root), DAYS)
    yield settings, eng
    eng.dispose()


def counts(eng) -> dict[str, int]:
    with eng.connect() as c:
        return {t: c.execute(text(f"SELECT count(*) FROM marts.{t}")).scalar_one() for t in MARTS}


def q(eng, sql: str):
    with eng.connect() as c:
        return c.execute(text(sql)).mappings().all()


def test_write_profile(wh):
    from replenish.warehouse import write_profile

    settings, _ = wh
    path = write_profile(settings)
    assert path == settings.dbt_profiles_dir / "profiles.yml"
    body = path.read_text()
    assert "replenish:" in body and TEST_DB in body and "schema: marts" in body and "threads: 2" in body


def test_build_full_refresh_then_incremental_is_rerunnable(wh):
    from replenish.warehouse import run_dbt_build

    settings, eng = wh
    first = run_dbt_build(D, full_refresh=True, settings=settings)
    assert first.success and first.models_passed >= 28 and first.tests_failed == 0 and first.tests_errored == 0
    assert first.counts.get("unit_test", {}).get("success", 0) + first.counts.get("unit_test", {}).get("pass", 0) >= 5
    after_full = counts(eng)
    assert all(n > 0 for n in after_full.values()), after_full
    # 3 days x 3 store/item pairs; drivers run to D + 14
    assert after_full["fct_daily_demand"] == 9
    assert after_full["fct_demand_drivers"] == 3 * (2 + 1 + 14)

    second = run_dbt_build(D, settings=settings)  # incremental re-run of the same day
    assert second.success
    assert counts(eng) == after_full
    third = run_dbt_build(D, settings=settings)
    assert third.success and counts(eng) == after_full

    # marts content
    rows = q(eng, "SELECT * FROM marts.fct_daily_demand WHERE demand_date = '2019-04-29' ORDER BY store_id, item_id")
    by_key = {(r["store_id"], r["item_id"]): r for r in rows}
    assert by_key[(1, 101)]["is_stockout"] is True  # on hand -1
    assert by_key[(1, 100)]["is_stockout"] is False
    assert by_key[(1, 100)]["is_promotion"] is True
    assert by_key[(1, 100)]["waste_qty"] == 1
    assert by_key[(1, 100)]["is_school_holiday"] is True  # store 1 is in HH
    assert all(r["iso_weekday"] == 1 for r in rows)  # Monday, whatever the POS label says

    cal = {(r["calendar_date"], r["region"]): r for r in q(eng, "SELECT * FROM marts.dim_calendar")}
    assert cal[(date(2019, 4, 29), "BY")]["iso_weekday"] == 1
    assert cal[(date(2019, 4, 28), "BY")]["iso_weekday"] == 7
    assert cal[(date(2019, 4, 28), "BY")]["weekday_label_source"] == "Mon"
    assert cal[(date(2019, 4, 28), "BY")]["is_weekday_label_consistent"] is False

    inv = q(eng, "SELECT * FROM marts.fct_inventory_position WHERE store_id = 1 AND item_id = 100")
    assert len(inv) == 1 and inv[0]["as_of_date"] == D and inv[0]["on_hand_qty"] == 12
    assert inv[0]["open_order_qty"] == 24  # PO of D due D+1; older POs are due by D -> overdue
    oo = q(eng, "SELECT * FROM marts.fct_open_orders ORDER BY po_id, line_no")
    assert {(r["po_id"], r["line_no"]) for r in oo} >= {(f"PO-{D}-1", 1), (f"PO-{D}-1", 2)}

    drivers = q(eng, f"SELECT * FROM marts.fct_demand_drivers WHERE driver_date = '{D + timedelta(days=1)}' "
                     "AND store_id = 1 AND item_id = 100")
    assert drivers[0]["is_weather_forecast"] is True and drivers[0]["is_promotion"] is True
    # the forecasts by issue day, as the forecaster reads them (ml.weather): issued D for D + 1, never the actuals
    from replenish.forecasting.inputs import mart_weather_forecasts

    wf = mart_weather_forecasts(eng, D, D)
    assert wf is not None and sorted(wf["store_id"]) == [1, 2]
    assert (wf["issue_date"] == pd.Timestamp(D)).all() and (wf["weather_date"] == pd.Timestamp(D + timedelta(1))).all()
    assert wf.set_index("store_id").loc[1, "rain"] == pytest.approx(2.5)


def test_build_error_names_failing_nodes(wh):
    from replenish.warehouse import DbtBuildError, run_dbt_build

    settings, eng = wh
    with eng.begin() as c:  # pack_size 0 violates the accepted_range test on stg_mms__item_suppliers
        c.execute(text("UPDATE raw.mms_item_suppliers SET pack_size = 0 WHERE item_id = 100"))
    try:
        with pytest.raises(DbtBuildError) as err:
            run_dbt_build(D, settings=settings, select="stg_mms__item_suppliers")
        assert any("stg_mms__item_suppliers" in n for n in err.value.failed_nodes)
        assert err.value.summary is not None and err.value.summary.tests_failed >= 1
    finally:
        with eng.begin() as c:
            c.execute(text("UPDATE raw.mms_item_suppliers SET pack_size = 6 WHERE item_id = 100"))


INCR_DB = "replenish_dbt_incr_test"
STAGED = ("stg_pos__sales_lines", "stg_pos__stock_levels", "stg_pos__waste_lines", "stg_mms__purchase_orders",
          "stg_mms__goods_receipts", "stg_mms__promotions", "stg_mms__weathers")


def _snapshot(eng) -> dict[str, list[tuple]]:
    """Every row of the incremental staging tables and the marts, sorted (all columns)."""
    tables = [f"staging.{t}" for t in STAGED] + ["intermediate.int_store_item_assortment"] + \
             [f"marts.{t}" for t in MARTS]
    with eng.connect() as c:
        return {t: sorted(tuple(str(v) for v in r) for r in c.execute(text(f"SELECT * FROM {t}"))) for t in tables}


def test_incremental_staging_equals_full_refresh(tmp_path_factory):
    """Nightly builds only restage the keys of newly loaded days (incl. a reloaded day that dropped a row and a
    later file that re-exports an earlier key); the result equals a full refresh from all of raw."""
    from replenish.warehouse import run_dbt_build

    base = database_url()
    admin = create_engine(sqlalchemy_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{INCR_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{INCR_DB}"'))
    url = base.rsplit("/", 1)[0] + "/" + INCR_DB
    state = tmp_path_factory.mktemp("dbt_incr_state")
    settings = Settings(home=get_settings().home, state_dir=state, database_url=url)
    eng = create_engine(sqlalchemy_url(url), future=True)
    root = state / "exports"
    d0, d1 = D - timedelta(days=2), D - timedelta(days=1)
    try:
        for d in (d0, d1):
            extract_fixtures.write_export_day(root, d)
        migrations.upgrade(eng)
        extract.load_days(eng, extract.CsvExportConnector(root), [d0, d1])
        assert run_dbt_build(d1, full_refresh=True, settings=settings).success

        # D re-exports yesterday's receipt R<d1>-2 (other quantity: the latest load wins) and yesterday's PO line,
        # now received (so no longer open).
        files = extract_fixtures._day_files(D)
        sales = files["pos/sales_lines.csv"] + f"R{d1}-2,1,101,{d1}T10:30:00+02:00,4,0.99,3.96,Sun\n"
        pos = files["mms/purchase_orders.csv"] + f"PO-{d1}-1,1,1,10,100,{d1},{D},24,received\n"
        extract_fixtures.write_export_day(root, D, {"pos/sales_lines.csv": sales, "mms/purchase_orders.csv": pos})
        extract.load_days(eng, extract.CsvExportConnector(root), [D])
        assert run_dbt_build(D, settings=settings).success

        # d1 is corrected and reloaded without receipt R<d1>-3: it must disappear from staging.
        d1_sales = extract_fixtures._day_files(d1)["pos/sales_lines.csv"]
        d1_sales = "\n".join(ln for ln in d1_sales.splitlines() if not ln.startswith(f"R{d1}-3")) + "\n"
        extract_fixtures.write_export_day(root, d1, {"pos/sales_lines.csv": d1_sales})
        extract.load_days(eng, extract.CsvExportConnector(root), [d1])
        assert run_dbt_build(D, settings=settings).success
        incremental = _snapshot(eng)

        receipts = {r["receipt_id"]: r for r in q(eng, "SELECT * FROM staging.stg_pos__sales_lines")}
        assert f"R{d1}-3" not in receipts and f"R{d0}-3" in receipts
        assert receipts[f"R{d1}-2"]["quantity"] == 4 and receipts[f"R{d1}-2"]["sales_date"] == D
        po = q(eng, f"SELECT status FROM staging.stg_mms__purchase_orders WHERE po_id = 'PO-{d1}-1' AND line_no = 1")
        assert [r["status"] for r in po] == ["received"]

        assert run_dbt_build(D, full_refresh=True, settings=settings).success
        assert _snapshot(eng) == incremental
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{INCR_DB}" WITH (FORCE)'))
        admin.dispose()


def test_cli_build_full_refresh_sees_raw_changed_by_hand(wh):
    """An increment only restages days the loader loaded; ``replenish build --full-refresh`` rebuilds from all of
    raw, so a row fixed by hand in SQL reaches the marts. One JSON document on stdout."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from replenish.warehouse import run_dbt_build

    settings, eng = wh
    assert run_dbt_build(D, settings=settings).success
    key = "store_id = 1 AND item_id = 100 AND _business_date = '2019-04-28'"
    with eng.begin() as c:
        old = c.execute(text(f"SELECT on_hand_qty FROM raw.pos_stock_levels WHERE {key}")).scalar_one()
        c.execute(text(f"UPDATE raw.pos_stock_levels SET on_hand_qty = on_hand_qty + 100 WHERE {key}"))
    stock = ("SELECT on_hand_qty FROM staging.stg_pos__stock_levels "
             "WHERE store_id = 1 AND item_id = 100 AND stock_date = '2019-04-28'")
    try:
        assert run_dbt_build(D, settings=settings).success
        assert q(eng, stock)[0]["on_hand_qty"] == old  # not a loaded day: the increment does not see it
        env = {**os.environ, "REPLENISH_DATABASE_URL": str(settings.database_url),
               "REPLENISH_STATE_DIR": str(settings.state)}
        cmd = [str(Path(sys.executable).with_name("replenish")), "build", "--date", str(D), "--full-refresh", "--json"]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        assert p.returncode == 0, p.stderr[-3000:]
        doc = json.loads(p.stdout)
        assert doc["success"] is True and doc["full_refresh"] is True
        assert q(eng, stock)[0]["on_hand_qty"] == old + 100
    finally:
        with eng.begin() as c:
            c.execute(text(f"UPDATE raw.pos_stock_levels SET on_hand_qty = on_hand_qty - 100 WHERE {key}"))
        run_dbt_build(D, full_refresh=True, settings=settings)


def test_forecasts_are_scored_against_what_sold_once_their_dates_are_past(wh):
    """marts.fct_forecast_accuracy puts each stored forecast beside what sold on its target date (<= D only);
    ``replenish accuracy --json`` pools them against the backtest of the model that made them, counts a sell-out
    day at its sales with the coverage as a range, and names what drifts."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from replenish.forecasting.accuracy import realised_accuracy
    from replenish.warehouse import run_dbt_build

    settings, eng = wh
    assert run_dbt_build(D, settings=settings).success
    sold = {(r["store_id"], r["item_id"], r["demand_date"]): r for r in
            q(eng, "SELECT store_id, item_id, demand_date, units_sold, is_stockout FROM marts.fct_daily_demand")}
    origin = D - timedelta(days=2)
    rows = []
    for (s, i, d), r in sold.items():
        if d <= origin:
            continue
        y = float(r["units_sold"])
        # each forecast 2 units high, its interval just containing what sold
        rows.append({"store_id": s, "item_id": i, "origin_date": origin, "target_date": d,
                     "horizon": (d - origin).days, "p10": max(y - 3, 0), "p50": y + 2, "p90": y + 4,
                     "model_version": "v-acc", "is_flagged": False, "run_id": "t"})
    for s, i in {(s, i) for s, i, _ in sold}:     # a target after D: not scored yet
        rows.append({"store_id": s, "item_id": i, "origin_date": origin, "target_date": D + timedelta(days=1),
                     "horizon": 3, "p10": 0, "p50": 1, "p90": 2, "model_version": "v-acc", "is_flagged": False,
                     "run_id": "t"})
    with eng.begin() as c:
        c.execute(text("DELETE FROM forecast.forecasts"))
        c.execute(text("DELETE FROM forecast.backtest_metrics"))
        c.execute(text("DELETE FROM forecast.models"))
        c.execute(text("INSERT INTO forecast.forecasts (store_id, item_id, origin_date, target_date, horizon, p10,"
                       " p50, p90, model_version, is_flagged, run_id) VALUES (:store_id, :item_id, :origin_date,"
                       " :target_date, :horizon, :p10, :p50, :p90, :model_version, :is_flagged, :run_id)"), rows)
        c.execute(text("INSERT INTO forecast.models (version, params, feature_config, backtest_metrics,"
                       " backtest_wape, artifact_path) VALUES ('v-acc', '{}', '{}', '{}', 0.1, '/none')"))
        # each series' backtest: WAPE 0.1 at h = 1, 0.2 at h = 2
        c.execute(text("INSERT INTO forecast.backtest_metrics (model_version, store_id, item_id, horizon, n, sum_y,"
                       " sum_p50, sum_abs_err, n_covered) VALUES ('v-acc', :s, :i, :h, 10, 100, 100, :e, 8)"),
                  [{"s": s, "i": i, "h": h, "e": 10 * h} for s, i in {(s, i) for s, i, _ in sold} for h in (1, 2)])
    try:
        assert run_dbt_build(D, settings=settings).success
        scored = q(eng, "SELECT * FROM marts.fct_forecast_accuracy ORDER BY store_id, item_id, target_date")
        past = [r for r in rows if r["target_date"] <= D]
        assert len(scored) == len(past) and all(r["target_date"] <= D for r in scored)
        assert all(r["abs_error"] == pytest.approx(2) and not r["is_below_p10"] and not r["is_above_p90"]
                   and not r["is_store_closed"] for r in scored)
        censored = [r for r in scored if r["is_censored"]]
        assert censored and {(r["store_id"], r["item_id"]) for r in censored} >= {(1, 101)}   # on hand -1 on D

        doc = realised_accuracy(eng, D)
        total = sum(float(sold[(r["store_id"], r["item_id"], r["target_date"])]["units_sold"]) for r in past)
        o = doc["overall"]
        assert o["rows"] == len(past) and o["censored_rows"] == len(censored)
        assert o["wape"] == pytest.approx(2 * len(past) / total, abs=1e-4)
        assert o["bias"] == pytest.approx(2 * len(past) / total, abs=1e-4)
        # inside P10-P90 for certain on the days that did not sell out; maybe on those that did
        assert o["coverage_low"] == pytest.approx((len(past) - len(censored)) / len(past), abs=1e-4)
        assert o["coverage_high"] == 1.0
        assert o["backtest_wape"] is not None and 0.1 < o["backtest_wape"] < 0.2
        assert [h["backtest_wape"] for h in doc["by_horizon"]] == [0.1, 0.2]
        assert o["backtest_coverage"] == pytest.approx(0.8)
        assert o["wape_backtested_rows"] == pytest.approx(o["wape"], abs=1e-4)     # horizons 1 and 2 only
        assert doc["first_target_date"] == str(D - timedelta(days=1)) and doc["last_target_date"] == str(D)
        assert [h["horizon"] for h in doc["by_horizon"]] == [1, 2]
        assert doc["status"] == "ok" and doc["drift"] == []      # too few rows to judge
        assert {s["item_id"] for s in doc["service_by_item"]} <= {100, 101}

        env = {**os.environ, "REPLENISH_DATABASE_URL": str(settings.database_url),
               "REPLENISH_STATE_DIR": str(settings.state)}
        exe = str(Path(sys.executable).with_name("replenish"))
        p = subprocess.run([exe, "accuracy", "--date", str(D), "--json"], capture_output=True, text=True, env=env,
                           timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
        got = json.loads(p.stdout)
        note = got.pop("retention_note")        # the clock's date decides it: the test's dates may lie long before
        assert note is None or "forecast retention" in note
        assert got == json.loads(json.dumps(doc))
        p = subprocess.run([exe, "accuracy", "--date", str(D)], capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0 and "By horizon" in p.stdout and "sold out" in p.stdout, p.stderr[-3000:]

        # the nightly report adds up the mart's scores in SQL: the same sums as scoring the forecasts in pandas
        from ml.report import score_sums
        from replenish.forecasting.report import load_run_inputs, write_run_report

        fc, _, _, scores = load_run_inputs(eng, D)
        assert scores is not None and set(fc["horizon"]) == {1}          # earlier origins: horizon 1 only
        days = {"target_date": "datetime64[ns]", "origin_date": "datetime64[ns]"}
        old = pd.DataFrame([r for r in rows if r["target_date"] <= D]).astype(days)
        act = pd.DataFrame(q(eng, "SELECT store_id, item_id, demand_date, units_sold::float8 AS units_sold,"
                                  " is_stockout FROM marts.fct_daily_demand")).astype({"demand_date": "datetime64[ns]"})
        by = ["grouping", "key"]
        want = score_sums(old, act).astype({"key": float}).sort_values(by, na_position="first").reset_index(drop=True)
        got = scores.astype({"key": float}).sort_values(by, na_position="first").reset_index(drop=True)
        assert len(got) == 1 + 2 + len({r["store_id"] for r in old.to_dict("records")})
        sums = ["n", "sum_y", "sum_p50", "sum_abs_err", "sum_pinball", "n_covered", "n_censored", "n_closed"]
        pd.testing.assert_frame_equal(got[by], want[by])
        pd.testing.assert_frame_equal(got[sums].astype(float), want[sums].astype(float).fillna(0.0))
        assert int(got.loc[got["grouping"] == "all", "n_censored"].iloc[0]) == len(censored)
        html = write_run_report(eng, D, settings.state / "report.html").read_text()
        assert f"Earlier origins {origin} .. {origin}" in html and "By store" in html

        # the scores are kept as long as the forecasts (forecast_retention_days): 0 keeps D's alone
        assert run_dbt_build(D, settings=settings, dbt_vars={"forecast_retention_days": 0}).success
        assert [r["target_date"] for r in q(eng, "SELECT DISTINCT target_date FROM marts.fct_forecast_accuracy")] == [D]
    finally:
        with eng.begin() as c:
            c.execute(text("DELETE FROM forecast.forecasts"))
            c.execute(text("DELETE FROM forecast.backtest_metrics"))
            c.execute(text("DELETE FROM forecast.models"))


def test_sold_out_days_are_told_by_where_their_stock_came_from(wh):
    """``replenish accuracy`` splits each item's days with sales (and the sold-out ones) by the delivery their stock
    came from (marts.fct_deliveries: the latest within the shelf life) and the Replenish order for it: nothing
    delivered, delivered short, ordered outside Replenish (no order, or a purchase order of another quantity),
    changed by a person, sent as proposed."""
    from replenish.cli_output import accuracy_text
    from replenish.forecasting import stockout_causes
    from replenish.forecasting.accuracy import (
        accuracy_with_store_rows,
        drift_reasons,
        realised_accuracy,
        service_by_item,
    )
    from replenish.warehouse import run_dbt_build

    settings, eng = wh
    origin = D - timedelta(days=2)
    forecasts = [{"s": s, "i": i, "o": origin, "t": origin + timedelta(days=h), "h": h}
                 for s, i in ((1, 100), (1, 101), (2, 100)) for h in (1, 2)]
    d1, d2 = D - timedelta(days=1), D - timedelta(days=2)
    with eng.begin() as c:
        c.execute(text("DELETE FROM forecast.forecasts"))
        c.execute(text("INSERT INTO forecast.forecasts (store_id, item_id, origin_date, target_date, horizon, p10, p50,"
                       " p90, model_version, is_flagged, run_id) VALUES (:s, :i, :o, :t, :h, 0, 2, 4, 'v-why', false,"
                       " 't')"), forecasts)
        # bread (2 days' shelf life) came 8 of 12 on D-2, nothing since; milk at store 2 came from purchase orders
        # Replenish did not send (none on D-1; 6 where Replenish sent 10 on D)
        c.execute(text("INSERT INTO raw.mms_purchase_orders (po_id, line_no, store_id, supplier_id, item_id,"
                       " order_date, due_date, quantity, status, _business_date) VALUES"
                       " ('PO-T', 1, 1, 11, 101, :d2, :d2, 12, 'received', :d2),"
                       " ('PO-T', 2, 2, 10, 100, :d2, :d1, 6, 'received', :d2),"
                       " ('PO-T', 3, 2, 10, 100, :d2, :d, 6, 'received', :d2)"), {"d": D, "d1": d1, "d2": d2})
        c.execute(text("INSERT INTO raw.mms_goods_receipts (receipt_no, po_id, line_no, store_id, item_id,"
                       " received_date, quantity, _business_date) VALUES"
                       " ('GR-T1', 'PO-T', 1, 1, 101, :d2, 8, :d2), ('GR-T2', 'PO-T', 2, 2, 100, :d1, 6, :d1),"
                       " ('GR-T3', 'PO-T', 3, 2, 100, :d, 6, :d)"), {"d": D, "d1": d1, "d2": d2})
        # milk at store 1 (receipts of a purchase order the exports do not hold): Replenish's orders for D-1 as
        # proposed and for D raised by a person; store 2's order for D sent 10
        orders = [("T-1", 1, d1, 24, 24), ("T-2", 1, D, 20, 24), ("T-3", 2, D, 10, 10)]
        for oid, store, day, proposed, final in orders:
            c.execute(text("INSERT INTO orders.purchase_orders (order_id, store_id, supplier_id, delivery_date,"
                           " order_date, status) VALUES (:o, :s, 10, :day, :od, 'sent')"),
                      {"o": oid, "s": store, "day": day, "od": day - timedelta(days=2)})
            c.execute(text("INSERT INTO orders.order_lines (order_id, item_id, proposed_qty, final_qty)"
                           " VALUES (:o, 100, :p, :f)"), {"o": oid, "p": proposed, "f": final})
    try:
        assert run_dbt_build(D, full_refresh=True, settings=settings).success
        deliveries = {(r["store_id"], r["item_id"], r["received_date"]): r
                      for r in q(eng, "SELECT * FROM marts.fct_deliveries")}
        assert deliveries[(1, 101, d2)]["is_short_delivery"] and deliveries[(1, 101, d2)]["ordered_qty"] == 12
        assert not deliveries[(1, 100, d1)]["has_known_order"] and deliveries[(1, 100, d1)]["ordered_qty"] is None

        doc = realised_accuracy(eng, D)
        causes = {s["item_id"]: {k: (c["stockout_days"], c["days_with_sales"]) for k, c in s["causes"].items()}
                  for s in doc["service_by_item"]}
        # bread sold out both days (on hand -1): D-1 on the short delivery, D with nothing left in its shelf life
        assert causes[101] == {"no_delivery": (1, 1), "short_delivery": (1, 1)}
        assert causes[100] == {"ordered_outside": (0, 2), "changed_by_person": (0, 1), "as_proposed": (0, 1)}
        assert list(causes[100]) == ["ordered_outside", "changed_by_person", "as_proposed"]   # CAUSES' order
        for s in doc["service_by_item"]:
            assert sum(c[1] for c in causes[s["item_id"]].values()) == s["days_with_sales"]
            assert sum(c[0] for c in causes[s["item_id"]].values()) == s["stockout_days"]
        assert "nothing delivered within its shelf life" in accuracy_text(doc)

        # by store, as the nightly keeps them for a store manager's page: the items' figures are their sums
        _, rows = accuracy_with_store_rows(eng, D)
        assert service_by_item(rows) == doc["service_by_item"]
        assert stockout_causes.record(eng, D, rows) == len(rows)
        assert stockout_causes.record(eng, D, rows) == len(rows)        # the night re-run: replaced, not doubled
        with eng.connect() as c:
            store2 = stockout_causes.for_stores(c, D, [2])
        # store 2's milk came on purchase orders of 6 where Replenish sent 10 (D), and none (D-1)
        assert service_by_item(store2) == [{"item_id": 100, "days_with_sales": 2, "stockout_days": 0,
                                            "stockout_share": 0.0, "asked": 0.05, "causes": {"ordered_outside": {
                                                "days_with_sales": 2, "stockout_days": 0, "stockout_share": 0.0}}}]

        # an item off its target names where its sold-out days' stock came from
        bread = next(s for s in doc["service_by_item"] if s["item_id"] == 101)
        reasons = drift_reasons({"rows": 0}, [{**bread, "days_with_sales": 200}])
        assert reasons == ["item 101 sold out on 100% of its days with sales, its ordering asks for 10%; by where the "
                           "stock came from, sold out: nothing delivered within its shelf life 1 of 1 days (100%), "
                           "delivered short 1 of 1 days (100%)"]
    finally:
        with eng.begin() as c:
            c.execute(text("DELETE FROM raw.mms_purchase_orders WHERE po_id = 'PO-T'"))
            c.execute(text("DELETE FROM raw.mms_goods_receipts WHERE po_id = 'PO-T'"))
            c.execute(text("DELETE FROM orders.order_lines WHERE order_id LIKE 'T-%'"))
            c.execute(text("DELETE FROM orders.purchase_orders WHERE order_id LIKE 'T-%'"))
            c.execute(text("DELETE FROM forecast.forecasts"))
            c.execute(text("DELETE FROM forecast.stockout_causes WHERE business_date = :d"), {"d": D})
        run_dbt_build(D, full_refresh=True, settings=settings)


def test_bench_seeds_a_month_of_past_forecasts_once(wh):
    """``bench pipeline``'s earlier nights (``seed_past_forecasts``): for each origin, the seasonal naive of every
    horizon 1-14 under the current model's version, as the forecast stage leaves them; a kept database is not
    written twice."""
    from benchmarks.pipeline import seed_past_forecasts

    settings, eng = wh
    sold = {(r["store_id"], r["item_id"], r["demand_date"]): float(r["units_sold"]) for r in
            q(eng, "SELECT store_id, item_id, demand_date, units_sold FROM marts.fct_daily_demand")}
    origins = [D - timedelta(days=2), D - timedelta(days=1), D]
    with eng.begin() as c:
        c.execute(text("DELETE FROM forecast.forecasts"))
        c.execute(text("UPDATE forecast.models SET is_current = false"))
        c.execute(text("INSERT INTO forecast.models (version, params, feature_config, backtest_metrics,"
                       " backtest_wape, artifact_path, is_current) VALUES ('v-seed', '{}', '{}', '{}', 0.1, '/none',"
                       " true)"))
    try:
        out = seed_past_forecasts(D + timedelta(days=1), len(origins), settings=settings)
        assert out["origins"] == 3 and out["first_origin"] == origins[0].isoformat()
        stored = q(eng, "SELECT * FROM forecast.forecasts")
        # each origin sees the days of the mart up to itself: 1, 2 and 3 days, one forecast per series and day
        series = {(s, i) for s, i, _ in sold}
        assert out["rows"] == len(stored) == len(series) * (1 + 2 + 3)
        assert {r["origin_date"] for r in stored} == set(origins)
        for r in stored:
            assert 1 <= r["horizon"] <= 14 and r["target_date"] - r["origin_date"] == timedelta(days=r["horizon"])
            y = sold[(r["store_id"], r["item_id"], r["target_date"] - timedelta(days=14))]
            assert float(r["p50"]) == y and float(r["p10"]) <= y < float(r["p90"])
            assert r["model_version"] == "v-seed" and r["run_id"] == "bench-past-forecasts" and not r["is_flagged"]
        again = seed_past_forecasts(D + timedelta(days=1), len(origins), settings=settings)
        assert "rows" not in again and len(q(eng, "SELECT 1 FROM forecast.forecasts")) == len(stored)
    finally:
        with eng.begin() as c:
            c.execute(text("DELETE FROM forecast.forecasts"))
            c.execute(text("DELETE FROM forecast.models WHERE version = 'v-seed'"))

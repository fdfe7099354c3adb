"""The monitoring plugin in a real ``dag.test()`` run: task attempts and the DAG run are recorded, and a
task that fails on every retry sends exactly one alert (to a local SendGrid-compatible server).

The probe DAG is written to a temporary folder; the plugin is loaded from the repo's ``plugins/`` as in
``replenish run`` (``AIRFLOW__CORE__PLUGINS_FOLDER``).
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from support.sendgrid_local import SendGridServer

PROBE = '''
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="replenish_monitoring_probe", schedule=None, catchup=False,
     start_date=pendulum.datetime(2019, 1, 1, tz="Europe/Berlin"),
     default_args={"retries": 2, "retry_delay": timedelta(seconds=0)})
def probe():
    @task
    def fine() -> int:
        return 1

    @task
    def boom() -> None:
        raise RuntimeError("probe failure")

    fine() >> boom()


probe()
'''


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory):
    import pendulum
    from pydantic import SecretStr

    from replenish.orchestration import configure_airflow
    from replenish.settings import get_settings

    settings = get_settings()
    srv = SendGridServer()
    saved = settings.sendgrid_api_key, settings.sendgrid_base_url, settings.alert_email_to
    settings.sendgrid_api_key, settings.sendgrid_base_url = SecretStr("SG.test"), srv.url
    settings.alert_email_to = "data-team@retailer.test, oncall@retailer.test"
    folder = tmp_path_factory.mktemp("probe_dags")
    (folder / "probe.py").write_text(PROBE)
    try:
        configure_airflow()
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

        bag = DagBag(dag_folder=str(folder))
        assert not bag.import_errors, bag.import_errors
        # dag.test() only runs serialized DAGs; the probe lives outside the configured dags folder, so it is
        # registered under the default bundle (which must exist in a fresh metadata DB first).
        from airflow.dag_processing.bundles.manager import DagBundlesManager

        DagBundlesManager().sync_bundles_to_db()
        sync_bag_to_db(bag, "dags-folder", None)
        dr = bag.get_dag("replenish_monitoring_probe").test(logical_date=pendulum.now("UTC"))
        yield dr, srv
    finally:
        settings.sendgrid_api_key, settings.sendgrid_base_url, settings.alert_email_to = saved
        srv.close()


def _rows(sql: str, **params):
    from replenish.database import begin

    with begin() as conn:
        return [dict(r) for r in conn.execute(text(sql), params).mappings().all()]


def test_listener_records_every_attempt_and_the_run(probe_run):
    dr, _ = probe_run
    assert "failed" in str(dr.state)
    tasks = _rows("SELECT task_id, try_number, max_tries, state, error FROM ops.task_runs "
                  "WHERE dag_id = 'replenish_monitoring_probe' AND run_id = :r ORDER BY task_id, try_number",
                  r=dr.run_id)
    assert [(t["task_id"], t["try_number"], t["state"]) for t in tasks] == [
        ("boom", 1, "up_for_retry"), ("boom", 2, "up_for_retry"), ("boom", 3, "failed"), ("fine", 1, "success"),
    ]
    assert "probe failure" in tasks[-2]["error"]
    runs = _rows("SELECT state, business_date, figures, links FROM ops.pipeline_runs "
                 "WHERE dag_id = 'replenish_monitoring_probe' AND run_id = :r", r=dr.run_id)
    assert len(runs) == 1 and runs[0]["state"] == "failed" and runs[0]["business_date"] is not None
    assert runs[0]["links"]["review_queue"].endswith("/queue") and "data_docs" in runs[0]["links"]


def test_one_alert_per_failure_not_per_retry(probe_run):
    dr, srv = probe_run
    alerts = _rows("SELECT task_id, try_number, status, recipients FROM ops.pipeline_alerts "
                   "WHERE dag_id = 'replenish_monitoring_probe' AND run_id = :r", r=dr.run_id)
    # three failed attempts and a failed DAG run: one alert, for the task's final failure
    assert alerts == [{"task_id": "boom", "try_number": 3, "status": "sent",
                       "recipients": "data-team@retailer.test, oncall@retailer.test"}]
    mails = [m for m in srv.mails if dr.run_id in m["subject"]]
    assert len(mails) == 1
    mail = mails[0]
    assert mail["subject"] == f"[replenish] replenish_monitoring_probe: task boom failed ({dr.run_id})"
    assert [t["email"] for t in mail["personalizations"][0]["to"]] == ["data-team@retailer.test",
                                                                       "oncall@retailer.test"]
    assert "probe failure" in mail["content"][0]["value"] and mail["categories"] == ["pipeline-alert"]

    # The same failure reported again (a listener called twice, a scheduler restart): no second mail.
    from replenish.database import engine
    from replenish.monitoring.alerts import alert_failure

    assert alert_failure(engine(), dag_id="replenish_monitoring_probe", run_id=dr.run_id, task_id="boom") is False
    assert len([m for m in srv.mails if dr.run_id in m["subject"]]) == 1


def test_plugin_views_are_ones_airflow_33s_ui_shows_and_a_browser_can_open():
    """The external views as the API serves them to the UI (Airflow's own response model), held to the rules of
    Airflow 3.3's UI (airflow/ui/dist): a run page shows only views with a url_route, framed, filling in
    {DAG_ID}/{RUN_ID}; a nav view without url_route is a new-tab link, but only inside a menu: one lone nav view
    is drawn as a <button href> that opens nothing. tests/test_airflow_ui.py clicks them in Chromium."""
    from urllib.parse import parse_qs, urlsplit

    from replenish.orchestration import configure_airflow

    configure_airflow()
    from airflow import plugins_manager
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    from replenish.settings import get_settings

    plugins = {p.name: p for p in plugins_manager._get_plugins()[0]}
    views = [ExternalViewResponse.model_validate(v) for v in plugins["replenish_monitoring"].external_views]
    platform = get_settings().platform_base_url.rstrip("/")
    for v in views:
        assert urlsplit(v.href).scheme in ("http", "https"), v  # no file:// a browser refuses from an http page
    nav = {v.name: v for v in views if v.destination == "nav"}
    assert nav["Review queue"].href == f"{platform}/queue"
    assert set(nav) == {"Review queue", "Forecast reports", "GX Data Docs"}
    assert all(v.url_route is None and v.category == "Replenish" and not v.nav_top_level for v in nav.values())
    run = {v.name: v for v in views if v.destination == "dag_run"}
    assert set(run) == {"Forecast report", "GX Data Docs"}
    routes = [v.url_route for v in views if v.url_route]
    assert len(routes) == len(set(routes)) == 2
    for v in run.values():
        assert v.url_route, v  # without one the run page does not show the view at all
        parts = urlsplit(v.href)
        assert v.href.startswith(f"{platform}/airflow/")  # the only pages the Airflow UI may frame
        assert parse_qs(parts.query) == {"dag_id": ["{DAG_ID}"], "run_id": ["{RUN_ID}"]}


# ---------------------------------------------------------------------------------------------
# the warehouse gone while a run fails: recorded and alerted once, after it is back

OUTAGE_PROBE = '''
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="replenish_outage_probe", schedule=None, catchup=False,
     start_date=pendulum.datetime(2019, 1, 1, tz="Europe/Berlin"),
     default_args={"retries": 1, "retry_delay": timedelta(seconds=0)})
def outage():
    @task
    def propose() -> None:
        # a stage writing to the warehouse, which is not there
        from sqlalchemy import text

        from replenish.database import begin

        with begin() as conn:
            conn.execute(text("SELECT 1"))

    propose()


@dag(dag_id="replenish_heartbeat_probe", schedule=None, catchup=False,
     start_date=pendulum.datetime(2019, 1, 1, tz="Europe/Berlin"))
def heartbeat():
    @task
    def beat() -> int:
        return 1

    beat()


outage()
heartbeat()
'''


@pytest.fixture
def outage_bag(tmp_path, monkeypatch):
    """The probe DAGs registered, the alert mails going to a local SendGrid, the spool in a temporary folder, and
    a way to take the warehouse away: point the settings at a closed port (Airflow's own database stays up)."""
    import socket

    import pendulum
    from pydantic import SecretStr

    from replenish.database import database_url
    from replenish.orchestration import configure_airflow
    from replenish.settings import get_settings

    settings = get_settings()
    srv = SendGridServer()
    saved = (settings.sendgrid_api_key, settings.sendgrid_base_url, settings.alert_email_to, settings.database_url)
    settings.sendgrid_api_key, settings.sendgrid_base_url = SecretStr("SG.test"), srv.url
    settings.alert_email_to = "data-team@retailer.test"
    monkeypatch.setenv("REPLENISH_MONITORING_SPOOL_DIR", str(tmp_path / "spool"))
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "outage.py").write_text(OUTAGE_PROBE)
    real_url = database_url(settings)
    with socket.socket() as s:           # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    closed_url = f"postgresql://postgres@127.0.0.1:{closed_port}/{real_url.rsplit('/', 1)[1]}"
    try:
        configure_airflow()
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

        bag = DagBag(dag_folder=str(folder))
        assert not bag.import_errors, bag.import_errors
        DagBundlesManager().sync_bundles_to_db()
        sync_bag_to_db(bag, "dags-folder", None)

        class Warehouse:
            def down(self) -> None:
                settings.database_url = closed_url

            def up(self) -> None:
                settings.database_url = saved[3]

            def run(self, dag_id: str):
                return bag.get_dag(dag_id).test(logical_date=pendulum.now("UTC"))

        yield Warehouse(), srv, tmp_path / "spool"
    finally:
        settings.sendgrid_api_key, settings.sendgrid_base_url, settings.alert_email_to, settings.database_url = saved
        srv.close()


def test_failed_run_while_the_warehouse_is_gone_is_recorded_and_alerted_once_after(outage_bag, monkeypatch):
    wh, srv, spool = outage_bag
    monkeypatch.setenv("REPLENISH_MONITORING_RECONNECT_ATTEMPTS", "1")   # spool at once: the outage outlasts a run
    wh.down()
    try:
        dr = wh.run("replenish_outage_probe")
    finally:
        wh.up()
    assert "failed" in str(dr.state)
    spooled = sorted(p.name for p in spool.glob("*.json"))
    assert len(spooled) >= 4   # run running, attempt 1 running + up_for_retry, attempt 2 running + failed, run failed
    assert _rows("SELECT 1 FROM ops.pipeline_runs WHERE run_id = :r", r=dr.run_id) == []
    assert [m for m in srv.mails if dr.run_id in m["subject"]] == []

    # The warehouse is back: the next run's listener delivers the spool before its own records.
    beat = wh.run("replenish_heartbeat_probe")
    assert "success" in str(beat.state)
    assert list(spool.glob("*.json")) == []
    run = _rows("SELECT state, business_date, figures FROM ops.pipeline_runs WHERE dag_id = 'replenish_outage_probe' "
                "AND run_id = :r", r=dr.run_id)
    assert len(run) == 1 and run[0]["state"] == "failed" and run[0]["business_date"] is not None
    tasks = _rows("SELECT try_number, state, error FROM ops.task_runs WHERE dag_id = 'replenish_outage_probe' "
                  "AND run_id = :r ORDER BY try_number", r=dr.run_id)
    assert [(t["try_number"], t["state"]) for t in tasks] == [(1, "up_for_retry"), (2, "failed")]
    assert "OperationalError" in tasks[-1]["error"]
    alerts = _rows("SELECT task_id, try_number, status FROM ops.pipeline_alerts WHERE run_id = :r", r=dr.run_id)
    assert alerts == [{"task_id": "propose", "try_number": 2, "status": "sent"}]
    mails = [m for m in srv.mails if dr.run_id in m["subject"]]
    assert len(mails) == 1 and "OperationalError" in mails[0]["content"][0]["value"]
    assert _rows("SELECT state FROM ops.pipeline_runs WHERE run_id = :r", r=beat.run_id) == [{"state": "success"}]

    # Delivering again (another listener, a restart) sends nothing more.
    from replenish.monitoring.listener import flush_spool

    assert flush_spool() == 0
    wh.run("replenish_heartbeat_probe")
    assert len([m for m in srv.mails if dr.run_id in m["subject"]]) == 1


def test_listener_reconnects_when_the_warehouse_comes_back_between_attempts(outage_bag, monkeypatch):
    from replenish.monitoring import listener

    wh, _, spool = outage_bag
    monkeypatch.setenv("REPLENISH_MONITORING_RECONNECT_ATTEMPTS", "3")
    waits: list[float] = []

    def wait(seconds: float) -> None:    # the database restarts while the listener waits
        waits.append(seconds)
        wh.up()

    monkeypatch.setattr(listener, "_sleep", wait)
    wh.down()
    try:
        beat = wh.run("replenish_heartbeat_probe")
    finally:
        wh.up()
    assert "success" in str(beat.state)
    assert waits == [1.0] and list(spool.glob("*.json")) == []   # one failed attempt, then delivered directly
    assert _rows("SELECT state FROM ops.pipeline_runs WHERE run_id = :r", r=beat.run_id) == [{"state": "success"}]
    assert _rows("SELECT state FROM ops.task_runs WHERE run_id = :r", r=beat.run_id) == [{"state": "success"}]


def test_a_record_the_warehouse_rejects_is_set_aside_not_blocking_the_spool(tmp_path, monkeypatch):
    from replenish.monitoring.listener import flush_spool
    from replenish.monitoring.spool import Spool

    monkeypatch.setenv("REPLENISH_MONITORING_SPOOL_DIR", str(tmp_path))
    spool = Spool(tmp_path)
    spool.put({"kind": "no_such_kind"})
    spool.put({"kind": "dag_run", "dag_run": {"dag_id": "replenish_spool_probe", "run_id": "spooled-1",
                                              "business_date": "2019-04-29", "state": "success",
                                              "started_at": "2019-04-29T22:00:00+00:00",
                                              "finished_at": "2019-04-29T22:05:00+00:00", "links": {}}})
    assert flush_spool() == 1
    assert spool.pending() == [] and len(list((tmp_path / "failed").glob("*.json"))) == 1
    assert "unknown monitoring record kind" in next((tmp_path / "failed").glob("*.error")).read_text()
    assert _rows("SELECT state, business_date::text AS d FROM ops.pipeline_runs WHERE run_id = 'spooled-1'") == [
        {"state": "success", "d": "2019-04-29"}]


def test_forecast_drift_is_mailed_to_the_data_team_once_when_it_starts():
    """The nightly forecast stage mails the data team when the accuracy verdict names a topic none of the week's
    verdicts before did; the same night re-run, a drift that goes on or one that comes back within the week mails
    nothing more; an alert whose attempt died between its claim and its outcome is sent again, marked as a possible
    duplicate, never dropped; one that a live attempt holds is left to it."""
    from datetime import date, timedelta

    from pydantic import SecretStr

    from replenish import pipeline
    from replenish.database import begin
    from replenish.monitoring.figures import NIGHTLY_DAG
    from replenish.run_state import record_stage
    from replenish.settings import get_settings

    settings = get_settings()
    srv = SendGridServer()
    saved = settings.sendgrid_api_key, settings.sendgrid_base_url, settings.alert_email_to
    settings.sendgrid_api_key, settings.sendgrid_base_url = SecretStr("SG.test"), srv.url
    settings.alert_email_to = "data-team@retailer.test"
    days = [date(2031, 3, 3) + timedelta(days=i) for i in range(14)]

    def night(d: date, topics: list[str]) -> list[str]:
        accuracy = {"drift": [f"{t}: the figures" for t in topics], "drift_topics": topics}
        new = pipeline._alert_new_drift(d, accuracy)
        record_stage("drift-test", d, "forecast", {"accuracy": {**accuracy, "new_drift": new}})
        return new

    def drift_mails() -> list[dict]:
        return [m for m in srv.mails if "forecasts drifting" in m["subject"]]

    try:
        assert night(days[0], ["item 101 stock-outs"]) == ["item 101 stock-outs"]
        assert night(days[0], ["item 101 stock-outs"]) == ["item 101 stock-outs"]   # the night re-run
        assert len(drift_mails()) == 1
        mail = drift_mails()[0]
        assert mail["subject"] == f"[replenish] forecasts drifting up to {days[0]}: item 101 stock-outs"
        body = mail["content"][0]["value"]
        assert "- item 101 stock-outs: the figures" in body and f"replenish accuracy --date {days[0]}" in body
        assert f"forecast_{days[0]}.html" in body and mail["categories"] == ["forecast-drift"]

        assert night(days[1], ["item 101 stock-outs"]) == []                       # goes on: no new mail
        assert night(days[2], ["item 101 stock-outs", "forecasts low"]) == ["forecasts low"]
        assert len(drift_mails()) == 2 and drift_mails()[1]["subject"].endswith(f"{days[2]}: forecasts low")
        assert "- item 101 stock-outs: the figures" in drift_mails()[1]["content"][0]["value"]

        # a claim left pending (the process died before it recorded how the mail went)
        with begin() as c:
            c.execute(text("INSERT INTO ops.pipeline_alerts (dag_id, run_id, task_id, map_index, recipients, subject,"
                           " message) VALUES (:dag, :d, 'forecast_accuracy', -1, 'x', 's', 'm')"),
                      {"dag": NIGHTLY_DAG, "d": str(days[3])})
        # ... while another live attempt holds it (a manual re-run beside the scheduled night): that one sends it
        from replenish.database import engine, held_alone
        from replenish.monitoring.alerts import DRIFT_TASK, alert_key

        with held_alone(engine(), "ops.pipeline_alerts", alert_key(NIGHTLY_DAG, str(days[3]), DRIFT_TASK, -1)) as h:
            assert h
            assert night(days[3], ["intervals too narrow"]) == ["intervals too narrow"]
            assert len(drift_mails()) == 2
        # ... and nobody holds it any more: the attempt died
        assert night(days[3], ["intervals too narrow"]) == ["intervals too narrow"]
        assert drift_mails()[-1]["subject"].startswith("POSSIBLE DUPLICATE: [replenish] forecasts drifting")
        assert _rows("SELECT status FROM ops.pipeline_alerts WHERE dag_id = :d AND run_id = :r",
                     d=NIGHTLY_DAG, r=str(days[3])) == [{"status": "sent"}]
        assert night(days[4], []) == [] and len(drift_mails()) == 3
        assert night(days[5], ["forecasts low"]) == []            # back after two quiet nights: named on days[2]
        assert night(days[13], ["forecasts low"]) == ["forecasts low"]   # 8 nights after it was last named
        assert len(drift_mails()) == 4
    finally:
        settings.sendgrid_api_key, settings.sendgrid_base_url, settings.alert_email_to = saved
        srv.close()
        with begin() as c:
            c.execute(text("DELETE FROM ops.stage_results WHERE run_id = 'drift-test'"))
            c.execute(text("DELETE FROM ops.pipeline_alerts WHERE dag_id = :dag AND run_id = ANY(:r)"),
                      {"dag": NIGHTLY_DAG, "r": [str(d) for d in days]})

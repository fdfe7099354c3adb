"""The platform's pages for the Airflow UI's DAG run tabs (``/airflow/...``): a run's forecast report and GX
validations, found through its ``ops.pipeline_runs`` record, and framable by the configured Airflow UI origin
only; every other page, and every other origin, stays unframeable."""

from __future__ import annotations

import datetime as dt
import shutil
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from support.platform_app import CSRF_RE, login, make_app

AIRFLOW = "http://airflow.test:8080"
DAY = dt.date(2000, 1, 3)
NIGHTLY_RUN = "manual__2000-01-03T22:59:59+00:00"  # ':' and '+' as Airflow writes them
TRAINING_RUN = "manual__2000-01-03T23:30:00+00:00"
STARTED = dt.datetime(2000, 1, 3, 23, 0, tzinfo=dt.UTC)
FINISHED = dt.datetime(2000, 1, 3, 23, 20, tzinfo=dt.UTC)


def _run_page(view: str, dag_id: str = "replenishment_nightly", run_id: str = NIGHTLY_RUN) -> str:
    return f"/airflow/{view}?" + urlencode({"dag_id": dag_id, "run_id": run_id})


@pytest.fixture(scope="module")
def settings():
    from replenish.settings import get_settings

    return get_settings().model_copy(update={"airflow_ui_origin": AIRFLOW})


@pytest.fixture(scope="module")
def app(world, settings):
    return make_app(settings=settings)


@pytest.fixture(scope="module")
def runs(settings):
    """Two recorded runs of the business date (the nightly one and a training one), the nightly's report, and
    GX validation pages from inside and outside the nightly run's hours."""
    from replenish.database import engine

    with engine().begin() as conn:
        conn.execute(text("INSERT INTO ops.pipeline_runs (dag_id, run_id, business_date, state, started_at, "
                          "finished_at) VALUES (:d, :r, :b, 'success', :s, :f) ON CONFLICT DO NOTHING"),
                     [{"d": "replenishment_nightly", "r": NIGHTLY_RUN, "b": DAY, "s": STARTED, "f": FINISHED},
                      {"d": "forecast_training", "r": TRAINING_RUN, "b": DAY, "s": FINISHED, "f": FINISHED}])
    report = settings.reports_dir / f"forecast_{DAY.isoformat()}.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("<html><body>report of 2000-01-03</body></html>")
    suite = settings.state / "data_docs" / "validations" / "airflow_views_probe"
    for when, batch in (("20000103T231000.123Z", "in-run"), ("20000102T231000.123Z", "night-before")):
        page = suite / "__none__" / when / f"{batch}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<html><body>validation {batch}</body></html>")
    yield
    report.unlink()
    shutil.rmtree(suite)
    with engine().begin() as conn:
        conn.execute(text("DELETE FROM ops.pipeline_runs WHERE run_id IN (:a, :b)"),
                     {"a": NIGHTLY_RUN, "b": TRAINING_RUN})


def _framed_by(r: Any) -> str:
    csp = r.headers["content-security-policy"]
    return csp.split("frame-ancestors ", 1)[1].split(";", 1)[0]


def test_a_run_tab_shows_that_runs_report_and_validations(app, world, runs) -> None:
    c = login(TestClient(app), world["users"]["buyer1"])
    r = c.get(_run_page("forecast-report"))
    assert r.status_code == 200 and "report of 2000-01-03" in r.text
    assert r.headers["content-security-policy"].startswith("sandbox")  # still the documents' sandbox
    assert _framed_by(r) == AIRFLOW and "x-frame-options" not in r.headers

    docs = c.get(_run_page("data-docs"))
    assert docs.status_code == 200 and _framed_by(docs) == AIRFLOW
    assert "in-run" in docs.text and "night-before" not in docs.text  # the run's hours, not every night's
    link = "/airflow/data-docs/validations/airflow_views_probe/__none__/20000103T231000.123Z/in-run.html"
    assert f'href="{link}"' in docs.text
    page = c.get(link)
    assert page.status_code == 200 and "validation in-run" in page.text and _framed_by(page) == AIRFLOW
    # the tab links only to the other tab's page (a link elsewhere would load a page refusing the frame)
    assert f'href="{_run_page("forecast-report").replace("&", "&amp;")}"' in docs.text
    assert 'href="/queue"' not in docs.text and "signout" not in docs.text


def test_a_tab_of_another_dag_or_an_unknown_run_says_why_there_is_nothing(app, world, runs) -> None:
    c = login(TestClient(app), world["users"]["buyer1"])
    r = c.get(_run_page("forecast-report", "forecast_training", TRAINING_RUN))
    assert r.status_code == 200 and 'data-testid="no-report"' in r.text and "report of" not in r.text
    assert 'data-testid="no-validations"' in c.get(_run_page("data-docs", "forecast_training", TRAINING_RUN)).text
    for view in ("forecast-report", "data-docs"):
        r = c.get(_run_page(view, run_id="manual__1999-01-01T00:00:00+00:00"))
        assert r.status_code == 200 and 'data-testid="run-not-recorded"' in r.text, view
    for bad in ("/airflow/data-docs/../../pyproject.toml", "/airflow/data-docs/..%2F..%2Fpgdata%2Fpg_hba.conf"):
        assert c.get(bad).status_code == 404, bad


def test_sign_in_inside_the_tab_returns_to_it(app, world, runs) -> None:
    anon = TestClient(app)
    r = anon.get(_run_page("forecast-report"), follow_redirects=False)
    assert r.status_code == 303
    form = anon.get(r.headers["location"])
    assert _framed_by(form) == AIRFLOW and 'href="/queue"' not in form.text  # the sign-in shows in the tab
    u = world["users"]["buyer1"]
    wrong = anon.post("/login", data={"username": u["username"], "password": "wrong", "next": _run_page("data-docs"),
                                      "csrf_token": CSRF_RE.search(form.text).group(1)})
    assert wrong.status_code == 401 and _framed_by(wrong) == AIRFLOW  # a typo does not blank the tab
    ok = anon.post("/login", data={"username": u["username"], "password": u["password"],
                                   "next": _run_page("forecast-report"),
                                   "csrf_token": CSRF_RE.search(form.text).group(1)}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == _run_page("forecast-report")
    # a store manager is refused (the documents cover every store), in the tab
    m = login(TestClient(app), world["users"]["manager1"])
    r = m.get(_run_page("forecast-report"))
    assert r.status_code == 403 and "report of" not in r.text and _framed_by(r) == AIRFLOW


def test_no_other_page_and_no_other_origin_may_frame(app, world, runs) -> None:
    c = login(TestClient(app), world["users"]["buyer1"])
    for path in ("/queue", "/reports", f"/reports/forecast_{DAY.isoformat()}.html", "/data-docs/", "/login",
                 "/login?next=/queue", "/login?next=//airflow/forecast-report", "/docs"):
        r = c.get(path)
        assert _framed_by(r) == "'none'" and r.headers["x-frame-options"] == "DENY", path
    # no Airflow UI configured: the run pages refuse every frame too
    from replenish.settings import get_settings

    closed = make_app(settings=get_settings().model_copy(update={"airflow_ui_origin": None}))
    r = login(TestClient(closed), world["users"]["buyer1"]).get(_run_page("forecast-report"))
    assert r.status_code == 200 and _framed_by(r) == "'none'" and r.headers["x-frame-options"] == "DENY"


def test_the_airflow_origin_and_the_link_settings_are_checked() -> None:
    from pydantic import ValidationError

    from replenish.settings import Settings

    assert Settings(airflow_ui_origin="HTTPS://Airflow.Example.com:8443/").airflow_ui_origin == \
        "https://airflow.example.com:8443"
    assert Settings(airflow_ui_origin="").airflow_ui_origin is None
    for bad in ("*", "airflow.example.com", "https://airflow.example.com/home", "https://*.example.com",
                "javascript:alert(1)", "https://a.example 'unsafe-inline'", "https://a.example;script-src *"):
        with pytest.raises(ValidationError):
            Settings(airflow_ui_origin=bad)
    # the Airflow UI and the mails link to these: a browser does not follow a file:// link from an http page
    for name in ("reports_url", "data_docs_url", "platform_base_url"):
        with pytest.raises(ValidationError):
            Settings(**{name: "file:///srv/replenish/.state/reports"})
    assert Settings(reports_url="https://docs.example/reports").reports_url == "https://docs.example/reports"


def test_sign_in_returns_to_a_run_tab_and_nowhere_else_under_airflow() -> None:
    from replenish.platform.web import _safe_next

    for page in (_run_page("forecast-report"), _run_page("data-docs"),
                 "/airflow/data-docs/validations/s/__none__/20000103T231000Z/b.html"):
        assert _safe_next(page) == page
    for other in ("/airflow/", "/airflow/data-docs/../../pyproject.toml", "/airflow/other"):
        assert _safe_next(other) == "/queue", other

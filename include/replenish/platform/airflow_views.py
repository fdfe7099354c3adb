"""What the Airflow UI shows in a DAG run's tabs (``plugins/replenish_monitoring.py``): that run's forecast report
and that run's GX validation pages, found through the run's record in ``ops.pipeline_runs``.

Airflow 3.3's UI shows a DAG run view only as an iframe whose sandbox has no ``allow-popups`` and no
``allow-top-navigation``: a link inside can load nothing but the frame itself. So these pages link only to each
other, all under ``/airflow/``, and they are the only pages the configured Airflow UI origin
(``REPLENISH_AIRFLOW_UI_ORIGIN``) may frame (``app._install_security_headers``); so is the sign-in page that
interrupts them (``web.render``). Every other page, and every other site, keeps ``frame-ancestors 'none'``.

The platform's session cookie is SameSite=Lax: a frame gets it only when the Airflow UI and the platform are on
the same site (one host on two ports, or subdomains of one domain). Across sites the nav links (new tabs) work;
the tabs then show the sign-in page again after each sign-in.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import text

from replenish.monitoring.figures import NIGHTLY_DAG
from replenish.platform.documents import REPORT_NAME, Central, serve_document, validation_pages
from replenish.platform.web import WebSession, render

router = APIRouter(prefix="/airflow", include_in_schema=False)

# GX stamps a validation with the time it ran; a little slack for clocks read at different moments
_SLACK = dt.timedelta(minutes=2)
DagId = Annotated[str, Query(max_length=250)]
RunId = Annotated[str, Query(max_length=250)]


def _run(request: Request, dag_id: str, run_id: str) -> dict[str, Any] | None:
    with request.app.state.ctx.engine.connect() as conn:
        row = conn.execute(text("SELECT business_date, state, started_at, finished_at FROM ops.pipeline_runs "
                                "WHERE dag_id = :d AND run_id = :r"), {"d": dag_id, "r": run_id}).first()
    return None if row is None else dict(row._mapping)


def _page(request: Request, s: WebSession, view: str, dag_id: str, run_id: str, **context: Any) -> HTMLResponse:
    return render(request, "airflow_run.html.j2", session=s, view=view, dag_id=dag_id, run_id=run_id,
                  run_query=f"dag_id={_q(dag_id)}&run_id={_q(run_id)}", **context)


def _q(value: str) -> str:
    return quote(value, safe="")


@router.get("/forecast-report", response_class=HTMLResponse)
def forecast_report(request: Request, s: Central, dag_id: DagId, run_id: RunId) -> Response:
    run = _run(request, dag_id, run_id)
    if run is None or run["business_date"] is None or dag_id != NIGHTLY_DAG:
        return _page(request, s, "report", dag_id, run_id, run=run, nightly=dag_id == NIGHTLY_DAG)
    name = f"forecast_{run['business_date'].isoformat()}.html"
    path = request.app.state.ctx.settings.reports_dir / name
    if not REPORT_NAME.fullmatch(name) or not path.is_file():
        return _page(request, s, "report", dag_id, run_id, run=run, nightly=True, missing=name)
    return serve_document(request.app.state.ctx.settings.reports_dir, name)


@router.get("/data-docs", response_class=HTMLResponse)
def run_data_docs(request: Request, s: Central, dag_id: DagId, run_id: RunId) -> HTMLResponse:
    run = _run(request, dag_id, run_id)
    pages: list[dict[str, Any]] = []
    if run is not None and run["started_at"] is not None:
        start = run["started_at"] - _SLACK
        end = (run["finished_at"] or dt.datetime.now(dt.UTC)) + _SLACK
        root = request.app.state.ctx.settings.state / "data_docs"
        pages = validation_pages(root, within=(start, end))
    return _page(request, s, "data_docs", dag_id, run_id, run=run, pages=pages, nightly=dag_id == NIGHTLY_DAG)


@router.get("/data-docs/{rel:path}")
def run_data_docs_page(request: Request, s: Central, rel: str) -> Response:
    return serve_document(request.app.state.ctx.settings.state / "data_docs", rel)

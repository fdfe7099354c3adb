"""A run's business figures, from what its stages recorded (``ops.stage_results``) and the warehouse.

Figures a stage did not record (the run failed before it, or the DAG is not the nightly one) are
left out rather than reported as zero.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from replenish.settings import Settings


_BLOCKED_LISTED = 50  # blocked stores listed with their reasons in a run's figures (the count is complete)


def _int(v: Any) -> int:
    return int(v or 0)


def run_figures(conn: Connection, run_id: str, business_date: dt.date | None) -> dict[str, Any]:
    """The run's business figures from what its stages recorded (the caller has migrated the database)."""
    stages: dict[str, dict[str, Any]] = {}
    for r in conn.execute(text("SELECT stage, status, summary FROM ops.stage_results WHERE run_id = :r"),
                          {"r": run_id}):
        stages[r.stage] = {"status": r.status, **(r.summary or {})}
    fig: dict[str, Any] = {}
    if "extract" in stages:
        fig["rows_loaded"] = _int(stages["extract"].get("rows_loaded"))
        fig["rows_quarantined"] = _int(stages["extract"].get("rows_quarantined"))
    if "transform" in stages:
        tests = stages["transform"].get("tests") or {}
        fig["dbt_tests_failed"] = _int(tests.get("failed")) + _int(tests.get("errored"))
    if "validate" in stages:
        v = stages["validate"]
        fig["checks_failed_blocking"] = len(v.get("failed_blocking") or [])
        fig["checks_failed_warning"] = len(v.get("failed_warning") or [])
        fig["stores_blocked"] = len(v.get("blocked_store_ids") or [])
        # which stores and why, in words (the gate's sentences), so the run's record says it without a query
        fig["blocked_stores"] = [{"store_id": b.get("store_id"), "why": b.get("details") or b.get("reasons") or []}
                                 for b in (v.get("blocked_stores") or [])[:_BLOCKED_LISTED]]
    if "release" in stages:
        fig["orders_auto_released"] = _int(stages["release"].get("auto"))
        fig["orders_to_review"] = _int(stages["release"].get("review"))
    if "dispatch" in stages:
        d = stages["dispatch"]
        fig["dispatch_sent"] = _int(d.get("sent"))
        fig["dispatch_kept_on_disk"] = _int(d.get("kept_on_disk"))
        fig["dispatch_failures"] = _int(d.get("failed")) + _int(d.get("dead"))
        fig["dispatch_dead_letters"] = _int(d.get("dead"))
    accuracy = stages.get("forecast", {}).get("accuracy")
    if isinstance(accuracy, dict):
        # the earlier nights' forecasts against what sold (replenish.forecasting.accuracy): ok, drift or no data
        fig["forecast_accuracy"] = accuracy.get("status")
        fig["forecast_drift"] = accuracy.get("drift") or []
    if "digest" in stages:
        fig["digests_sent"] = _int(stages["digest"].get("sent"))
    if business_date is not None:
        row = conn.execute(
            text("SELECT sum(orders), sum(auto_released) FROM orders.release_stats WHERE business_date = :d"),
            {"d": business_date},
        ).one()
        if row[0]:
            fig["touchless_rate"] = round(float(row[1]) / float(row[0]), 4)
    model = conn.execute(text("SELECT version, backtest_wape FROM forecast.models WHERE is_current")).first()
    if model is not None:
        fig["model_version"] = model[0]
        fig["backtest_wape"] = None if model[1] is None else round(float(model[1]), 4)
    fig["stage_status"] = {k: v["status"] for k, v in stages.items()}
    return fig


def _platform(settings: Settings) -> str:
    return settings.platform_base_url.rstrip("/")


def data_docs_url(settings: Settings) -> str:
    """The GX Data Docs: served by the ordering platform (``/data-docs/``) unless a URL is configured."""
    return settings.data_docs_url or f"{_platform(settings)}/data-docs/index.html"


def reports_url(settings: Settings) -> str:
    """The forecast reports: served by the ordering platform (``/reports``) unless a URL is configured."""
    return settings.reports_url or f"{_platform(settings)}/reports"


NIGHTLY_DAG = "replenishment_nightly"  # the one DAG that writes a forecast report per business date


def run_links(settings: Settings, business_date: dt.date | None, dag_id: str | None = NIGHTLY_DAG) -> dict[str, str]:
    """Where a person looks next: the platform's review queue, the run's Data Docs and (nightly runs only: the
    training DAG writes none) the run's forecast report."""
    links = {"review_queue": f"{_platform(settings)}/queue", "data_docs": data_docs_url(settings)}
    if business_date is not None and dag_id == NIGHTLY_DAG:
        links["forecast_report"] = f"{reports_url(settings).rstrip('/')}/forecast_{business_date.isoformat()}.html"
    return links

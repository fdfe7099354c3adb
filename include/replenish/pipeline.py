"""The nightly job's stages, as plain functions.

The Airflow DAG only wires these together; the CLI and tests call the same
functions, so there is one implementation of each stage. Forecast and propose
fan out over store partitions in the DAG (``forecast_partition`` / ``propose_partition``,
then ``forecast_summary`` / ``propose_summary``); ``forecast`` and ``propose`` are
the same path over one partition of all stores. Each stage is re-runnable for a
business date and records what it did through ``replenish.run_state`` (table
``ops.stage_results``: one row per business date and stage, replaced by a retry or
a re-run, so that re-running a date leaves every table's row count unchanged),
which is what ``replenish run --json`` and ``replenish status`` report.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from replenish import migrations
from replenish.database import begin, engine
from replenish.forecasting.runtime import use_passive_openmp_wait
from replenish.run_state import record_stage, stage_results
from replenish.settings import Settings, get_settings

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def available_export_dates(settings: Settings | None = None) -> list[dt.date]:
    settings = settings or get_settings()
    root = settings.exports_dir
    if not root.exists():
        return []
    dates = []
    for child in root.iterdir():
        try:
            dates.append(dt.date.fromisoformat(child.name))
        except ValueError:
            continue
    return sorted(dates)


def loaded_dates() -> set[dt.date]:
    migrations.ensure_current()
    with begin() as conn:
        rows = conn.execute(text("SELECT DISTINCT business_date FROM raw.load_batches")).all()
    return {r[0] for r in rows}


def extract(business_date: dt.date, run_id: str, *, source: str | None = None,
            backfill: bool = True, progress: Progress | None = None) -> dict[str, Any]:
    """Load the day's exports into ``raw``; first catch up on earlier days never loaded.

    The day itself is always reloaded (replace, never append), so a re-run is a no-op
    on counts. Earlier days are loaded only once: the nightly run must not rewrite
    history every night, but a fresh installation needs it.
    """
    from pathlib import Path

    from replenish.extract import RAW_SCHEMA, CsvExportConnector, load_days, quarantined_rows

    settings = get_settings()
    root = Path(source) if source else settings.exports_dir
    if not (root / business_date.isoformat()).exists():
        raise FileNotFoundError(
            f"no exports for business date {business_date} under {root} "
            "(run `replenish data import-bakery`, or point REPLENISH_EXPORTS_ROOT at the export folder)"
        )
    migrations.ensure_current()
    days = [business_date]
    if backfill:
        done = loaded_dates()
        history = [d for d in available_export_dates(settings) if d < business_date and d not in done]
        days = history + days
    summary = load_days(engine(), CsvExportConnector(root), days, progress=progress)
    result = summary.to_dict()
    result["backfilled_days"] = len(days) - 1
    if summary.rows_quarantined:
        shown = quarantined_rows(engine(), days)
        if summary.rows_quarantined > len(shown):
            result["quarantine_note"] = (f"the first {len(shown)} of {summary.rows_quarantined:,} quarantined rows; "
                                         f"all are in {RAW_SCHEMA}.quarantine")
        result["quarantined_rows"] = shown
    return record_stage(run_id, business_date, "extract", result)


def transform(business_date: dt.date, run_id: str) -> dict[str, Any]:
    """``dbt build`` (models + tests) for the business date; a full refresh on an empty warehouse."""
    from replenish.warehouse import run_dbt_build

    migrations.ensure_current()  # dbt's sources are the migrated raw tables
    with begin() as conn:
        has_marts = conn.execute(
            text("SELECT to_regclass('marts.fct_daily_demand') IS NOT NULL")
        ).scalar()
    summary = run_dbt_build(business_date, full_refresh=not has_marts)
    return record_stage(run_id, business_date, "transform", summary.to_dict())


def validate(business_date: dt.date, run_id: str) -> dict[str, Any]:
    """Quality gate: failed blocking checks block automation for the affected stores.

    Builds the GX Data Docs of the run's validations (``<state>/data_docs/index.html``, path in the
    summary as ``data_docs``), which the Airflow UI links to from each DAG run."""
    from replenish.quality import run_quality_gate

    result = run_quality_gate(business_date, run_id, data_docs=True).to_dict()
    status = "blocked" if result.get("is_automation_blocked") else "success"
    return record_stage(run_id, business_date, "validate", result, status=status)


def _automation_blocked(business_date: dt.date, run_id: str) -> bool | set[int]:
    """The stores whose forecasts are flagged: the quality gate's blocked store ids (a bad store must not
    flag a good one), or True (every store) when there is no gate result or it blocked without naming stores."""
    res = stage_results(run_id).get("validate")
    if res is None:
        return True  # no gate result: never let the run look clean
    stores = {int(s) for s in res.get("blocked_store_ids") or ()}
    if res.get("is_automation_blocked") and not stores:
        return True
    return stores


def _flag_summary(blocked: bool | set[int]) -> dict[str, Any]:
    return {"is_flagged": bool(blocked),
            "flagged_store_ids": "all" if blocked is True else sorted(blocked) if blocked else []}


def forecast(business_date: dt.date, run_id: str) -> dict[str, Any]:
    """Forecasts for the business date as origin; flagged for the stores the quality gate blocked. The DAG's path
    (:func:`forecast_partition`, then :func:`forecast_summary`) over one partition of all stores."""
    parts = [forecast_partition(business_date, run_id, ids) for ids in store_partitions(business_date, run_id, n=1)]
    return forecast_summary(business_date, run_id, parts)


def store_partitions(business_date: dt.date, run_id: str, n: int | None = None) -> list[list[int]]:
    """The warehouse's stores in ``n`` groups (default: setting ``store_partitions``), for the mapped forecast and
    proposal tasks. Round-robin over the sorted ids, so groups are balanced and stable from night to night.

    Also migrates the database before the parallel partitions start (they would wait on each other's check).
    """
    n = n or get_settings().store_partitions
    if n < 1:
        raise ValueError(f"store_partitions must be >= 1, got {n}")
    migrations.ensure_current()
    with begin() as conn:
        stores = [int(r[0]) for r in conn.execute(text("SELECT DISTINCT store_id FROM marts.dim_stores ORDER BY 1"))]
    groups = [stores[i::n] for i in range(n)]
    log.info("%s: %d stores in %d partitions", business_date, len(stores), n)
    return [g for g in groups if g]


def forecast_partition(business_date: dt.date, run_id: str, store_ids: list[int]) -> dict[str, Any]:
    """Forecasts of one store partition; replaces only those stores' rows of the origin (a retry is a no-op)."""
    use_passive_openmp_wait()  # a DAG task's process: before lightgbm loads
    from replenish.forecasting.predict import predict_for_date

    blocked = _automation_blocked(business_date, run_id)
    rows = predict_for_date(engine(), business_date, run_id, automation_blocked=blocked, store_ids=store_ids)
    # the mapped task's own line in its log (the stage's record is written once, by forecast_summary)
    log.info("forecasts for %s: %d rows for stores %s", business_date, rows, _store_list(store_ids))
    return {"rows": rows, "stores": len(store_ids)}


def _store_list(store_ids: list[int], shown: int = 20) -> str:
    head = ", ".join(map(str, store_ids[:shown]))
    return head + (f" and {len(store_ids) - shown} more" if len(store_ids) > shown else "")


def forecast_summary(business_date: dt.date, run_id: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The forecast stage's record after all partitions: total rows, the flag, the run's report and the accuracy
    verdict."""
    from replenish.forecasting import stockout_causes
    from replenish.forecasting.accuracy import accuracy_with_store_rows
    from replenish.forecasting.predict import analyze_forecasts, prune_forecasts

    summary: dict[str, Any] = {"rows": sum(int(p.get("rows", 0)) for p in parts), "partitions": len(parts)}
    summary.update(_flag_summary(_automation_blocked(business_date, run_id)))
    # how the earlier nights' forecasts met what sold up to D (``replenish accuracy``): the verdict and its reasons
    # reach the report, the run's figures, ``replenish status`` and the Airflow plugin
    accuracy, store_rows = accuracy_with_store_rows(engine(), business_date)
    # the same figures by store, for a store manager's own page (/service)
    summary["stockout_cause_rows"] = stockout_causes.record(engine(), business_date, store_rows)
    if accuracy["drift"]:
        log.warning("forecast accuracy up to %s: %s", business_date, "; ".join(accuracy["drift"]))
    summary["report"] = str(_forecast_report(business_date, accuracy))
    # the verdict and what it was judged on (the buyer digests scope the per-item part to each buyer from here)
    summary["accuracy"] = {k: accuracy[k] for k in ("status", "drift", "drift_topics", "overall", "service_by_item")}
    summary["accuracy"]["new_drift"] = _alert_new_drift(business_date, accuracy)
    # the stored forecasts are kept for forecast_retention_days (their scores in the accuracy mart as long, dbt)
    summary["forecasts_pruned"] = prune_forecasts(engine(), business_date, get_settings().forecast_retention_days)
    analyze_forecasts(engine())
    return record_stage(run_id, business_date, "forecast", summary)


# a drift topic is new when none of this many nights before named it: a figure that hovers at its limit and
# crosses it every other night is one mail, not one a night
DRIFT_MEMORY_NIGHTS = 7


def _alert_new_drift(business_date: dt.date, accuracy: dict[str, Any]) -> list[str]:
    """Mail the data team when the verdict names a topic (an item's stock-outs, the intervals, the bias, the error)
    that the week's verdicts before did not, once per business date; a drift that goes on is in the digests, the
    report and ``replenish status`` every night, not in a new mail. Returns the new topics."""
    from replenish.monitoring.alerts import AlertStatusNotRecorded, alert_drift, keep_status_for_later
    from replenish.monitoring.figures import NIGHTLY_DAG, run_links

    topics = accuracy.get("drift_topics") or []
    if not topics:
        return []
    with begin() as conn:
        before: set[str] = set(conn.execute(text(
            """SELECT DISTINCT jsonb_array_elements_text(summary -> 'accuracy' -> 'drift_topics')
               FROM ops.stage_results
               WHERE stage = 'forecast' AND business_date >= :since AND business_date < :d
                 AND jsonb_typeof(summary -> 'accuracy' -> 'drift_topics') = 'array'"""),
            {"d": business_date, "since": business_date - dt.timedelta(days=DRIFT_MEMORY_NIGHTS)}).scalars())
    new = [t for t in topics if t not in before]
    if new:
        try:
            alert_drift(engine(), dag_id=NIGHTLY_DAG, business_date=business_date, reasons=accuracy["drift"],
                        new=new, links=run_links(get_settings(), business_date))
        except AlertStatusNotRecorded as exc:
            keep_status_for_later(exc)
    return new


def propose_partition(business_date: dt.date, run_id: str, store_ids: list[int]) -> dict[str, Any]:
    """Proposals of one store partition (orders are per store and supplier: partitions never share an order)."""
    from replenish.orders import stages

    out = stages.propose(business_date, run_id, store_ids=store_ids)
    log.info("proposals for %s, stores %s: %s", business_date, _store_list(store_ids),
             {k: v for k, v in out.items() if isinstance(v, int | float) and not isinstance(v, bool)})
    return out


def propose_summary(business_date: dt.date, run_id: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The proposals stage's record: the partitions' counts added up."""
    summary: dict[str, Any] = {"partitions": len(parts)}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                summary[key] = summary.get(key, 0) + value
    return record_stage(run_id, business_date, "proposals", summary)


def _forecast_report(business_date: dt.date, verdict: dict[str, Any] | None = None) -> Path:
    """The run's HTML forecast report (actual vs P10-P50-P90, error by horizon and store, the accuracy verdict)."""
    from replenish.forecasting.report import write_run_report

    path = get_settings().reports_dir / f"forecast_{business_date.isoformat()}.html"
    return write_run_report(engine(), business_date, path, verdict=verdict)


def train(business_date: dt.date, run_id: str) -> dict[str, Any]:
    use_passive_openmp_wait()  # a DAG task's process: before lightgbm loads
    from replenish.forecasting.train import train_and_register

    migrations.ensure_current()  # the weekly training DAG's one task
    return record_stage(run_id, business_date, "train", train_and_register(engine(), business_date))


def propose(business_date: dt.date, run_id: str) -> dict[str, Any]:
    """Order proposals for the order date after the business date (idempotent per delivery). The DAG's path
    (:func:`propose_partition`, then :func:`propose_summary`) over one partition of all stores."""
    parts = [propose_partition(business_date, run_id, ids) for ids in store_partitions(business_date, run_id, n=1)]
    return propose_summary(business_date, run_id, parts)


def release(business_date: dt.date, run_id: str) -> dict[str, Any]:
    """Release rules: auto-approve (into the outbox) or route to review with reason codes."""
    from replenish.orders import release as _release

    return record_stage(run_id, business_date, "release", _release(business_date, run_id))


def dispatch(business_date: dt.date, run_id: str) -> dict[str, Any]:
    """Cutoff actions due by now (``replenish.clock``), then drain the outbox; counts only what this call sent.
    Past delivery dates are never sent."""
    from replenish.orders import dispatch as _dispatch

    summary = _dispatch(run_id=run_id)
    return record_stage(run_id, business_date, "dispatch", summary)


def digest(business_date: dt.date, run_id: str) -> dict[str, Any]:
    """One digest mail per active buyer for the business date (exactly once, even on retry or re-run).

    Raises after recording when a mail failed and is queued for another attempt, so that Airflow
    retries the task (a retry sends only the digests still unsent)."""
    from replenish.digest import DigestNotSent, run_digest

    summary = run_digest(engine(), business_date, run_id)
    if summary["failed"]:
        record_stage(run_id, business_date, "digest", summary, status="failed")
        raise DigestNotSent(f"{summary['failed']} digest(s) not sent yet for {business_date}; they stay queued")
    return record_stage(run_id, business_date, "digest", summary)


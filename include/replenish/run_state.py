"""The state a run's stages share: table ``ops.stage_results``, one row per business date and stage.

What is stored: for each stage of ``replenish.pipeline`` that finished (``extract``, ``transform``, ``validate``,
``forecast``, ``proposals``, ``release``, ``dispatch``, ``digest``; ``train`` for the weekly training), the run id,
the business date, a status (``success``; ``blocked`` when the quality gate blocked automation; ``failed`` when a
digest is still unsent) and the stage's summary as JSON (the dict the stage function returns). A retry or a re-run
of the date replaces the row (key: business date and stage), so re-running a date leaves the row count unchanged;
the row keeps the run id of the run that wrote it last.

Who writes it: every stage function of ``replenish.pipeline``, through :func:`record_stage` (and only there).

Who reads it:

* ``replenish.pipeline``: the forecast stages read the ``validate`` record of their run (the stores the quality gate
  blocked) through :func:`stage_results`;
* ``replenish run --json`` and ``replenish demo`` (``replenish.cli``): a run's records, :func:`stage_results`;
* ``replenish status`` (``replenish.status.last_runs``): each run's stage statuses;
* the monitoring listener (``replenish.monitoring.figures.run_figures``): a run's business figures from the
  summaries of ``extract``, ``transform``, ``validate``, ``release``, ``dispatch`` and ``digest``;
* ``replenish bench pipeline`` (``benchmarks.pipeline``): which setup stages of an earlier run can be reused;
* the tests.

The table itself is defined by ``replenish.migrations``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from sqlalchemy import text

from replenish import migrations
from replenish.database import begin

log = logging.getLogger(__name__)
# a stage's summary in its task's log (the Airflow UI), cut where a summary lists many stores or rows
_LOGGED_CHARS = 4000


def record_stage(run_id: str, business_date: dt.date, stage: str, summary: dict[str, Any],
                 status: str = "success") -> dict[str, Any]:
    """Record (or replace) the stage's row for the business date; returns ``summary``."""
    migrations.ensure_current()
    with begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO ops.stage_results (run_id, business_date, stage, status, summary)
                VALUES (:run_id, :d, :stage, :status, CAST(:summary AS jsonb))
                ON CONFLICT (business_date, stage) DO UPDATE
                   SET run_id = EXCLUDED.run_id, status = EXCLUDED.status,
                       summary = EXCLUDED.summary, finished_at = now()
                """
            ),
            {"run_id": run_id, "d": business_date, "stage": stage, "status": status,
             "summary": json.dumps(summary, default=str)},
        )
    said = json.dumps(summary, default=str)
    log.info("stage %s for business date %s: %s, %s", stage, business_date, status,
             said if len(said) <= _LOGGED_CHARS else said[:_LOGGED_CHARS] + " ...")
    return summary


def stage_results(run_id: str) -> dict[str, Any]:
    """The run's records by stage: ``{stage: {"status": ..., **summary}}``, in the order they finished."""
    migrations.ensure_current()
    with begin() as conn:
        rows = conn.execute(
            text("SELECT stage, status, summary FROM ops.stage_results WHERE run_id = :r ORDER BY finished_at"),
            {"r": run_id},
        ).all()
    return {r.stage: {"status": r.status, **r.summary} for r in rows}

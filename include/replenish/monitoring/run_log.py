"""Where the monitoring listener records runs: ``ops.pipeline_runs``, ``ops.task_runs``, ``ops.pipeline_alerts``.

Upserts keyed by Airflow's own identities, so a listener called twice for the same event (a scheduler
restart, a DAG run re-run with the same run id) updates a row instead of adding one:
- pipeline_runs: (dag_id, run_id), with the run's business figures and links;
- task_runs: (dag_id, run_id, task_id, map_index, try_number): one row per attempt;
- pipeline_alerts: (dag_id, run_id, task_id, map_index): at most one failure alert per task instance
  and run, whatever the number of retries or listener calls.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from replenish import migrations

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# Logs of Airflow runs: a re-run of a business date is a new Airflow run (new run id) and adds its rows,
# unlike the warehouse's data tables, which a re-run leaves unchanged.
RUN_LOG_TABLES = ("ops.pipeline_runs", "ops.task_runs", "ops.pipeline_alerts")

def record_task_run(conn: Connection, *, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int,
                    max_tries: int | None, state: str, started_at: dt.datetime | None,
                    finished_at: dt.datetime | None, error: str | None = None) -> None:
    conn.execute(
        text("""INSERT INTO ops.task_runs (dag_id, run_id, task_id, map_index, try_number, max_tries, state,
                    started_at, finished_at, error)
                VALUES (:dag, :run, :task, :mi, :try, :max, :state, :start, :end, :err)
                ON CONFLICT (dag_id, run_id, task_id, map_index, try_number) DO UPDATE
                   SET state = EXCLUDED.state, max_tries = EXCLUDED.max_tries,
                       started_at = coalesce(EXCLUDED.started_at, ops.task_runs.started_at),
                       finished_at = EXCLUDED.finished_at, error = EXCLUDED.error, recorded_at = now()"""),
        {"dag": dag_id, "run": run_id, "task": task_id, "mi": map_index, "try": try_number, "max": max_tries,
         "state": state, "start": started_at, "end": finished_at, "err": (error or None) and error[:4000]},
    )


def record_dag_run(conn: Connection, *, dag_id: str, run_id: str, business_date: dt.date | None, state: str,
                   started_at: dt.datetime | None, finished_at: dt.datetime | None,
                   figures: dict[str, Any] | None = None, links: dict[str, Any] | None = None) -> None:
    conn.execute(
        text("""INSERT INTO ops.pipeline_runs (dag_id, run_id, business_date, state, started_at, finished_at,
                    figures, links)
                VALUES (:dag, :run, :d, :state,
                        -- no wall-clock start known (a dag.test() run): its first task's start
                        coalesce(CAST(:start AS timestamptz), (SELECT min(t.started_at) FROM ops.task_runs t
                                                WHERE t.dag_id = :dag AND t.run_id = :run)),
                        :end, CAST(:fig AS jsonb), CAST(:links AS jsonb))
                ON CONFLICT (dag_id, run_id) DO UPDATE
                   SET business_date = coalesce(EXCLUDED.business_date, ops.pipeline_runs.business_date),
                       state = EXCLUDED.state,
                       started_at = coalesce(ops.pipeline_runs.started_at, EXCLUDED.started_at),
                       finished_at = EXCLUDED.finished_at,
                       figures = ops.pipeline_runs.figures || EXCLUDED.figures,
                       links = ops.pipeline_runs.links || EXCLUDED.links, recorded_at = now()"""),
        {"dag": dag_id, "run": run_id, "d": business_date, "state": state, "start": started_at,
         "end": finished_at, "fig": json.dumps(figures or {}, default=str),
         "links": json.dumps(links or {}, default=str)},
    )


def recent_runs(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    migrations.ensure_current(conn)
    rows = conn.execute(
        text("""SELECT r.dag_id, r.run_id, r.business_date, r.state, r.started_at, r.finished_at, r.figures,
                       r.links,
                       (SELECT count(*) FROM ops.task_runs t WHERE t.dag_id = r.dag_id AND t.run_id = r.run_id
                          AND t.state IN ('failed', 'up_for_retry')) AS task_failures
                FROM ops.pipeline_runs r ORDER BY r.recorded_at DESC LIMIT :n"""),
        {"n": limit},
    ).mappings().all()
    return [dict(r) for r in rows]

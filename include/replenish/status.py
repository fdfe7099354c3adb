"""What ``replenish status`` reports: warehouse table counts and the last runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from replenish.database import begin

WAREHOUSE_SCHEMAS = ("raw", "staging", "intermediate", "marts", "ops", "forecast", "orders")


def table_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    with begin() as conn:
        tables = conn.execute(
            text(
                """
                SELECT table_schema, table_name FROM information_schema.tables
                WHERE table_schema = ANY(:schemas) AND table_type = 'BASE TABLE'
                ORDER BY 1, 2
                """
            ),
            {"schemas": list(WAREHOUSE_SCHEMAS)},
        ).all()
        for schema, name in tables:
            counts[f"{schema}.{name}"] = int(
                conn.execute(text(f'SELECT count(*) FROM "{schema}"."{name}"')).scalar() or 0
            )
    return counts


def last_runs(limit: int = 10) -> list[dict[str, Any]]:
    with begin() as conn:
        exists = conn.execute(text("SELECT to_regclass('ops.stage_results') IS NOT NULL")).scalar()
        if not exists:
            return []
        rows = conn.execute(
            text(
                """
                SELECT run_id, business_date, min(finished_at) AS started, max(finished_at) AS finished,
                       jsonb_object_agg(stage, status) AS stages
                FROM ops.stage_results GROUP BY run_id, business_date
                ORDER BY max(finished_at) DESC LIMIT :n
                """
            ),
            {"n": limit},
        ).all()
    monitored = {r["run_id"]: r for r in dag_runs(limit * 3)}
    runs = []
    for r in rows:
        states = set(r.stages.values())
        state = "blocked" if "blocked" in states else ("failed" if "failed" in states else "success")
        run = {"run_id": r.run_id, "business_date": r.business_date.isoformat(),
               "finished_at": r.finished.isoformat(), "state": state, "stages": r.stages}
        if r.run_id in monitored:  # the figures the monitoring listener recorded for this Airflow run
            run["dag_state"] = monitored[r.run_id]["state"]
            run["figures"] = monitored[r.run_id]["figures"]
            run["links"] = monitored[r.run_id]["links"]
        runs.append(run)
    return runs


def dag_runs(limit: int = 10) -> list[dict[str, Any]]:
    """Every DAG's last runs as the monitoring plugin recorded them (``ops.pipeline_runs``)."""
    from replenish.monitoring.store import recent_runs

    with begin() as conn:
        rows = recent_runs(conn, limit)
    return [{"dag_id": r["dag_id"], "run_id": r["run_id"],
             "business_date": r["business_date"].isoformat() if r["business_date"] else None,
             "state": r["state"], "started_at": r["started_at"].isoformat() if r["started_at"] else None,
             "finished_at": r["finished_at"].isoformat() if r["finished_at"] else None,
             "task_failures": int(r["task_failures"]), "figures": r["figures"], "links": r["links"]}
            for r in rows]


def collect_status(limit: int = 10) -> dict[str, Any]:
    return {"tables": table_counts(), "runs": last_runs(limit), "dag_runs": dag_runs(limit)}

"""What ``replenish status`` reports: warehouse table counts and the last runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from replenish import migrations
from replenish.database import begin
from replenish.orders.channels.base import KEPT_ON_DISK_SQL

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
        migrations.ensure_current(conn)
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
    from replenish.monitoring.run_log import recent_runs

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


def night_outcome(business_date: Any) -> dict[str, Any]:
    """What the nightly run for ``business_date`` did with the orders of its order date: how many went out
    without a person, were sent, wait in review (and why), were escalated at the cutoff; alerts and digests."""
    from replenish import clock

    order_date = clock.order_date_for(business_date)
    with begin() as conn:
        migrations.ensure_current(conn)
        row = conn.execute(text("""
            SELECT count(*) AS orders,
                   count(*) FILTER (WHERE left(released_by, 8) = 'release:') AS released_automatically,
                   count(*) FILTER (WHERE status IN ('sent', 'acknowledged')) AS sent,
                   count(*) FILTER (WHERE status IN ('proposed', 'in_review')) AS in_review,
                   count(*) FILTER (WHERE cutoff_action = 'escalate') AS escalated,
                   count(*) FILTER (WHERE status = 'dead_letter') AS dead_letter
            FROM orders.purchase_orders WHERE order_date = :d"""), {"d": order_date}).mappings().one()
        reasons: dict[str, int] = dict(conn.execute(text("""
            SELECT split_part(r, ':', 1), count(DISTINCT order_id) FROM orders.purchase_orders, unnest(reasons) r
            WHERE order_date = :d AND status IN ('proposed', 'in_review') GROUP BY 1 ORDER BY 2 DESC, 1"""),
            {"d": order_date}).all())
        # sent as far as the outbox goes, but only written to the outbox folder (no SendGrid key): no supplier has them
        kept = conn.execute(text(f"""SELECT count(*) FROM orders.purchase_orders p
            WHERE p.order_date = :d AND p.status IN ('sent', 'acknowledged') AND {KEPT_ON_DISK_SQL}"""),
            {"d": order_date}).scalar()
        alerts = conn.execute(text("""SELECT count(*) FROM orders.alerts a JOIN orders.purchase_orders p
            USING (order_id) WHERE p.order_date = :d"""), {"d": order_date}).scalar()
        capped = conn.execute(text("""SELECT count(*) FROM orders.order_lines l JOIN orders.purchase_orders p
            USING (order_id) WHERE p.order_date = :d AND l.edited_by LIKE 'release:%%'"""), {"d": order_date}).scalar()
        digests = conn.execute(text("SELECT count(*) FILTER (WHERE status = 'sent'), count(*) "
                                    "FROM orders.digest_outbox WHERE business_date = :b"), {"b": business_date}).one()
    n = int(row["orders"])
    return {
        "business_date": str(business_date), "order_date": order_date.isoformat(), "orders": n,
        "released_automatically": int(row["released_automatically"]),
        "touchless_rate": round(int(row["released_automatically"]) / n, 3) if n else None,
        "sent": int(row["sent"]), "sent_kept_on_disk": int(kept or 0), "in_review": int(row["in_review"]),
        "escalated_at_cutoff": int(row["escalated"]),
        "dead_letter": int(row["dead_letter"]), "lines_capped": int(capped or 0), "review_reasons": reasons,
        "alerts": int(alerts or 0), "digests_sent": int(digests[0]), "digests": int(digests[1]),
    }

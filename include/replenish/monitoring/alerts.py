"""Failure alerts by email: once per failed task instance and run, never once per retry.

The listener calls :func:`alert_failure` only for a final failure (the attempt that leaves the task
``failed``, not ``up_for_retry``). The claim is the row in ``ops.pipeline_alerts``: inserted with
``ON CONFLICT DO NOTHING``, so a second call for the same (dag, run, task, map index) finds it and
sends nothing. The mail goes through the order e-mail channel (SendGrid v3, or an .eml file in the
outbox folder without an API key, named by the alert's key, which is itself a sent marker).
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING

from sqlalchemy import text

from replenish import migrations

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from replenish.orders.channels import EmailChannel
    from replenish.settings import Settings

log = logging.getLogger(__name__)


class AlertStatusNotRecorded(Exception):  # noqa: N818 - a state to carry, not a failure of the alert
    """The alert was claimed and the mail attempted, but the warehouse went away before its status was written.

    Carries the status so the caller can record it later (the listener spools it): the mail is never sent again.
    """

    def __init__(self, key: dict[str, object], status: str, external_ref: str | None, error: str | None):
        super().__init__(f"alert {key} {status}, status not recorded")
        self.key, self.status, self.external_ref, self.error = key, status, external_ref, error


def alert_key(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{dag_id}-{run_id}-{task_id or 'dagrun'}")
    return f"alert-{safe}-{map_index}"


def alert_failure(engine: Engine, *, dag_id: str, run_id: str, task_id: str = "", map_index: int = -1,
                  try_number: int | None = None, error: str | None = None, links: dict[str, str] | None = None,
                  settings: Settings | None = None, channel: EmailChannel | None = None) -> bool:
    """Record and send one alert; returns False when this failure was already alerted."""
    from replenish.orders.channels import EmailChannel
    from replenish.settings import get_settings

    s = settings or get_settings()
    recipients = [r.strip() for r in s.alert_email_to.split(",") if r.strip()]
    what = f"task {task_id}" + (f"[{map_index}]" if map_index >= 0 else "") if task_id else "DAG run"
    subject = f"[replenish] {dag_id}: {what} failed ({run_id})"
    lines = [f"{what} of {dag_id} failed for good in run {run_id}"
             + (f" after {try_number} attempt(s)." if try_number else "."), "", f"Error: {error or 'n/a'}", ""]
    lines += [f"{name.replace('_', ' ')}: {url}" for name, url in (links or {}).items()]
    body = "\n".join(lines) + "\n"
    with engine.begin() as conn:
        migrations.ensure_current(conn)
        claimed = conn.execute(
            text("""INSERT INTO ops.pipeline_alerts (dag_id, run_id, task_id, map_index, try_number, recipients,
                        subject, message)
                    VALUES (:dag, :run, :task, :mi, :try, :to, :subj, :msg)
                    ON CONFLICT (dag_id, run_id, task_id, map_index) DO NOTHING RETURNING 1"""),
            {"dag": dag_id, "run": run_id, "task": task_id, "mi": map_index, "try": try_number,
             "to": ", ".join(recipients), "subj": subject, "msg": body},
        ).first()
    if claimed is None:
        return False
    key = alert_key(dag_id, run_id, task_id, map_index)
    ch = channel or EmailChannel.from_settings(s)
    try:
        ref = ch.send_message(to=recipients, subject=subject, text_body=body,
                              html_body=f"<pre>{html.escape(body)}</pre>", key=key, category="pipeline-alert")
        status, err = "sent", None
    except Exception as exc:  # noqa: BLE001 - a failing alert must not fail the task or the scheduler
        log.warning("failure alert %s not sent: %s", key, exc)
        ref, status, err = None, "failed", f"{type(exc).__name__}: {exc}"[:1000]
    try:
        mark_alert(engine, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, status=status,
                   external_ref=ref, error=err)
    except Exception as exc:
        from replenish.monitoring.spool import is_unreachable

        if is_unreachable(exc):
            ident: dict[str, object] = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id,
                                        "map_index": map_index}
            raise AlertStatusNotRecorded(ident, status, ref, err) from exc
        raise
    return True


def mark_alert(engine: Engine, *, dag_id: str, run_id: str, task_id: str, map_index: int, status: str,
               external_ref: str | None = None, error: str | None = None) -> None:
    """Record how the alert's mail went (the row was claimed before the mail)."""
    with engine.begin() as conn:
        conn.execute(
            text("""UPDATE ops.pipeline_alerts SET status = :st, external_ref = :ref, last_error = :e,
                        sent_at = CASE WHEN :st = 'sent' THEN now() END
                    WHERE dag_id = :dag AND run_id = :run AND task_id = :task AND map_index = :mi"""),
            {"st": status, "ref": external_ref, "e": error, "dag": dag_id, "run": run_id, "task": task_id,
             "mi": map_index},
        )

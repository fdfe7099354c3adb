"""Alerts to the data team by email, each once: a task instance's final failure, a failed run, forecasts drifting.

The listener calls :func:`alert_failure` only for a final failure (the attempt that leaves the task
``failed``, not ``up_for_retry``); the nightly forecast stage calls :func:`alert_drift` when the accuracy
verdict names something none of the week's nights before did. The claim is the row in ``ops.pipeline_alerts``,
keyed by (dag, run, task, map index): a second call finds it and sends nothing, a call while another live attempt
holds the alert sends nothing, and a row left ``pending`` by an attempt that died mid-way is sent again marked as a
possible duplicate (:func:`send_once`). The mail goes through
the order e-mail channel (SendGrid v3, or an .eml file in the outbox folder without an API key, named by the
alert's key).
"""

from __future__ import annotations

import datetime as dt
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


def keep_status_for_later(exc: AlertStatusNotRecorded) -> None:
    """The mail went out (or failed for good) but its status could not be written: spool it for the listener's
    next delivery, so the alert is never sent again."""
    from replenish.monitoring.spool import Spool, spool_folder

    Spool(spool_folder()).put({"kind": "alert_status", "alert_status": {
        **exc.key, "status": exc.status, "external_ref": exc.external_ref, "error": exc.error}})


def alert_key(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{dag_id}-{run_id}-{task_id or 'dagrun'}")
    return f"alert-{safe}-{map_index}"


def alert_failure(engine: Engine, *, dag_id: str, run_id: str, task_id: str = "", map_index: int = -1,
                  try_number: int | None = None, error: str | None = None, links: dict[str, str] | None = None,
                  settings: Settings | None = None, channel: EmailChannel | None = None) -> bool:
    """Record and send one alert; returns False when this failure was already alerted."""
    what = f"task {task_id}" + (f"[{map_index}]" if map_index >= 0 else "") if task_id else "DAG run"
    subject = f"[replenish] {dag_id}: {what} failed ({run_id})"
    lines = [f"{what} of {dag_id} failed for good in run {run_id}"
             + (f" after {try_number} attempt(s)." if try_number else "."), "", f"Error: {error or 'n/a'}", ""]
    lines += [f"{name.replace('_', ' ')}: {url}" for name, url in (links or {}).items()]
    return send_once(engine, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index,
                     try_number=try_number, subject=subject, body="\n".join(lines) + "\n", settings=settings,
                     channel=channel)


DRIFT_TASK = "forecast_accuracy"


def alert_drift(engine: Engine, *, dag_id: str, business_date: dt.date, reasons: list[str], new: list[str],
                links: dict[str, str] | None = None, settings: Settings | None = None,
                channel: EmailChannel | None = None) -> bool:
    """Mail the data team that the forecasts drift (``replenish accuracy``'s reasons), once per business date:
    keyed by the date, not the run, so re-running the night does not mail again. ``new`` names what the nights
    before did not (the caller mails only when something is new)."""
    subject = f"[replenish] forecasts drifting up to {business_date}: {'; '.join(new)}"
    lines = [f"The stored forecasts met what sold up to {business_date} outside the limits "
             "(replenish accuracy):", ""]
    lines += [f"- {r}" for r in reasons]
    lines += ["", f"New (not named by the nights before): {', '.join(new)}.",
              f"Figures: replenish accuracy --date {business_date}", ""]
    lines += [f"{name.replace('_', ' ')}: {url}" for name, url in (links or {}).items()]
    return send_once(engine, dag_id=dag_id, run_id=business_date.isoformat(), task_id=DRIFT_TASK, map_index=-1,
                     subject=subject, body="\n".join(lines) + "\n", settings=settings, channel=channel,
                     category="forecast-drift")


def send_once(engine: Engine, *, dag_id: str, run_id: str, task_id: str, map_index: int, subject: str, body: str,
              try_number: int | None = None, settings: Settings | None = None, channel: EmailChannel | None = None,
              category: str = "pipeline-alert") -> bool:
    """Claim the alert's row, mail it, record how that went; False when it was sent (or failed for good) before.

    The whole attempt holds the alert's key alone (:func:`replenish.database.held_alone`): a second live attempt
    sends nothing. So a claimed row still ``pending`` that nobody holds was left by an attempt that died between
    its claim and its outcome: whether that mail went out is unknown, so it is sent again marked as a possible
    duplicate (same key), never dropped."""
    from replenish.database import held_alone
    from replenish.settings import get_settings

    key = alert_key(dag_id, run_id, task_id, map_index)
    with held_alone(engine, "ops.pipeline_alerts", key) as mine:
        if not mine:
            # Another live attempt holds this alert (a manual re-run beside the scheduled night): it sends and
            # records it; a claim is "dead" only when no live process holds it.
            log.info("alert %s: another live attempt is sending it", key)
            return False
        return _claim_and_send(engine, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index,
                               subject=subject, body=body, try_number=try_number, key=key,
                               settings=settings or get_settings(), channel=channel, category=category)


def _claim_and_send(engine: Engine, *, dag_id: str, run_id: str, task_id: str, map_index: int, subject: str,
                    body: str, try_number: int | None, key: str, settings: Settings, channel: EmailChannel | None,
                    category: str) -> bool:
    from replenish.orders.channels import EmailChannel

    recipients = [r.strip() for r in settings.alert_email_to.split(",") if r.strip()]
    with engine.begin() as conn:
        migrations.ensure_current(conn)
        claimed = conn.execute(
            text("""INSERT INTO ops.pipeline_alerts AS a (dag_id, run_id, task_id, map_index, try_number, recipients,
                        subject, message)
                    VALUES (:dag, :run, :task, :mi, :try, :to, :subj, :msg)
                    ON CONFLICT (dag_id, run_id, task_id, map_index) DO UPDATE SET try_number = a.try_number
                     WHERE a.status = 'pending'
                    RETURNING (xmax = 0) AS is_first"""),
            {"dag": dag_id, "run": run_id, "task": task_id, "mi": map_index, "try": try_number,
             "to": ", ".join(recipients), "subj": subject, "msg": body},
        ).first()
    if claimed is None:
        return False
    ch = channel or EmailChannel.from_settings(settings)
    try:
        ref = ch.send_message(to=recipients, subject=subject, text_body=body,
                              html_body=f"<pre>{html.escape(body)}</pre>", key=key, category=category,
                              possible_duplicate=not claimed.is_first)
        status, err = "sent", None
    except Exception as exc:  # noqa: BLE001 - a failing alert must not fail the task or the scheduler
        log.warning("alert %s not sent: %s", key, exc)
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

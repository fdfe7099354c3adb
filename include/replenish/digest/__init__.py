"""Buyer digests: one mail per active buyer per business date, after the nightly dispatch.

    from replenish.digest import run_digest
    run_digest(engine(), date(2019, 4, 29), run_id="...")   # enqueue + send; safe to repeat

Content: ``replenish.digest.content``; mail text/HTML and deep links: ``replenish.digest.render``;
exactly-once sending: ``replenish.digest.outbox``. Without a SendGrid API key the mails are written
as ``digest-<date>-u<user_id>.eml`` to the outbox folder.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from replenish.orders.channels import EmailChannel
    from replenish.orders.dispatcher import DispatchConfig
    from replenish.settings import Settings

log = logging.getLogger(__name__)


class DigestNotSent(RuntimeError):
    """Some digests could not be sent in this attempt (they stay queued; a retry sends only those)."""


def run_digest(
    engine: Engine,
    business_date: dt.date,
    run_id: str,
    *,
    settings: Settings | None = None,
    channel: EmailChannel | None = None,
    cfg: DispatchConfig | None = None,
    hooks: dict | None = None,
) -> dict[str, Any]:
    from replenish import migrations
    from replenish.digest.content import Thresholds, buyer_digest, night_accuracy
    from replenish.digest.outbox import drain_digests, enqueue
    from replenish.digest.render import html_body, subject, text_body
    from replenish.orders.channels import EmailChannel
    from replenish.platform.accounts import list_users
    from replenish.settings import get_settings

    s = settings or get_settings()
    th = Thresholds(s.digest_yoy_threshold, s.digest_yoy_min_units, s.digest_yoy_horizon_days)
    summary: dict[str, Any] = {"buyers": 0, "unscoped": [], "new": 0, "refreshed": 0, "already_sent": 0,
                               "to_review": 0, "exceptions": 0}
    with engine.begin() as conn:
        migrations.ensure_current(conn)
        buyers = list_users(conn, role="buyer", active_only=True)
        # the forecasts against what sold, as the night's forecast stage judged them
        accuracy = night_accuracy(conn, business_date)
    for user in buyers:
        if not user.scope("supplier") and not user.scope("category"):
            # Nothing is theirs to review: a mail would be noise. Listed so an admin can assign a scope.
            summary["unscoped"].append(user.username)
            continue
        with engine.begin() as conn:
            d = buyer_digest(conn, user, business_date, th, accuracy)
            payload = {"digest": d.to_dict(), "text": text_body(d, s.platform_base_url, s.timezone),
                       "html": html_body(d, s.platform_base_url, s.timezone)}
            outcome = enqueue(conn, business_date, user.user_id, user.email, subject(d), payload, run_id)
        summary[outcome] += 1
        summary["buyers"] += 1
        summary["to_review"] += d.review_count
        summary["exceptions"] += d.exception_count
    sent = drain_digests(engine, channel or EmailChannel.from_settings(s), business_date, run_id=run_id, cfg=cfg,
                         hooks=hooks)
    summary.update(sent)
    summary["delivery"] = "sendgrid" if (channel.api_key if channel else s.sendgrid_api_key) else "eml"
    log.info("digest %s: %d buyers, %s", business_date, summary["buyers"], sent)
    return summary

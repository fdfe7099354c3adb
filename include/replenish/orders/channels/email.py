"""Orders by email through the SendGrid v3 API (``sendgrid`` library, host = settings.sendgrid_base_url):
HTML body + CSV attachment, order id in custom_args and an ``X-Replenish-Order-Id`` header. SendGrid does
not dedupe, so the dispatcher keeps a local sent ledger for this channel. Without an API key the message is
written as ``<order_id>.eml`` to settings.outbox_dir instead (the external ref says so)."""

from __future__ import annotations

import base64
import html
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from replenish.orders.channels.base import ChannelError, order_csv


def _html(payload: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(ln['item_id']))}</td><td>{int(ln['qty'])}</td></tr>" for ln in payload["lines"]
    )
    return (
        f"<p>Purchase order <b>{html.escape(payload['order_id'])}</b> for store "
        f"{html.escape(str(payload['store_id']))}, delivery {payload['delivery_date']}.</p>"
        f"<table><tr><th>Item</th><th>Qty</th></tr>{rows}</table>"
    )


class EmailChannel:
    name = "email"
    uses_ledger = True

    def __init__(
        self, *, api_key: str | None, base_url: str, mail_from: str, outbox_dir: str | Path, sandbox: bool = False
    ):
        self.api_key, self.base_url, self.mail_from = api_key, base_url, mail_from
        self.outbox_dir, self.sandbox = Path(outbox_dir), sandbox

    @classmethod
    def from_settings(cls, settings) -> EmailChannel:
        key = settings.sendgrid_api_key.get_secret_value() if settings.sendgrid_api_key else None
        return cls(
            api_key=key,
            base_url=settings.sendgrid_base_url,
            mail_from=settings.mail_from,
            outbox_dir=settings.outbox_dir,
            sandbox=settings.sendgrid_sandbox,
        )

    def already_sent(self, idempotency_key: str) -> str | None:
        if not self.api_key:
            p = self.outbox_dir / f"{idempotency_key}.eml"
            return f"eml:{p}" if p.exists() else None
        return None  # the dispatcher's sent ledger answers for SendGrid

    def _recipient(self, payload):
        to = (payload.get("supplier") or {}).get("email")
        if not to:
            raise ChannelError(f"no email address for supplier {payload.get('supplier_id')}")
        return to

    def send(self, payload: dict[str, Any], idempotency_key: str) -> str:
        to = self._recipient(payload)
        subject = f"Purchase order {payload['order_id']} - delivery {payload['delivery_date']}"
        csv_text = order_csv(payload)
        if not self.api_key:
            return self._write_eml(payload, idempotency_key, to, subject, csv_text)
        from sendgrid.helpers.mail import (
            Attachment,
            CustomArg,
            Disposition,
            FileContent,
            FileName,
            FileType,
            Header,
            Mail,
        )

        mail = Mail(from_email=self.mail_from, to_emails=to, subject=subject, html_content=_html(payload))
        mail.attachment = Attachment(
            FileContent(base64.b64encode(csv_text.encode()).decode()),
            FileName(f"{payload['order_id']}.csv"),
            FileType("text/csv"),
            Disposition("attachment"),
        )
        mail.custom_arg = CustomArg("order_id", idempotency_key)
        mail.header = Header("X-Replenish-Order-Id", idempotency_key)
        return self.post(mail)

    def post(self, mail: Any) -> str:
        """POST a ``sendgrid.helpers.mail.Mail`` to /v3/mail/send (sandbox mode when configured)."""
        from python_http_client.exceptions import HTTPError
        from sendgrid import SendGridAPIClient
        from sendgrid.helpers.mail import MailSettings, SandBoxMode

        if self.sandbox:
            ms = MailSettings()
            ms.sandbox_mode = SandBoxMode(True)
            mail.mail_settings = ms
        try:
            resp = SendGridAPIClient(api_key=self.api_key, host=self.base_url).send(mail)
        except HTTPError as exc:
            raise ChannelError(
                f"SendGrid HTTP {getattr(exc, 'status_code', '?')}: {getattr(exc, 'body', exc)}"
            ) from exc
        except OSError as exc:
            raise ChannelError(f"SendGrid unreachable: {exc}") from exc
        if resp.status_code >= 300:
            raise ChannelError(f"SendGrid HTTP {resp.status_code}")
        msg_id = (resp.headers or {}).get("X-Message-Id") if hasattr(resp.headers, "get") else None
        return f"sendgrid:{msg_id or resp.status_code}"

    def send_message(
        self, *, to: list[str], subject: str, text_body: str, html_body: str, key: str, category: str
    ) -> str:
        """A plain text + HTML mail that is not an order (buyer digests, run alerts); ``key`` is its
        idempotency key (custom arg, header, and the .eml file name without an API key)."""
        if not to:
            raise ChannelError(f"{category} mail {key}: no recipient")
        if not self.api_key:
            m = EmailMessage()
            m["From"], m["To"], m["Subject"] = self.mail_from, ", ".join(to), subject
            m["X-Replenish-Key"] = key
            m.set_content(text_body)
            m.add_alternative(html_body, subtype="html")
            return self.store_eml(m, key)
        from sendgrid.helpers.mail import Category, CustomArg, Header, Mail

        mail = Mail(
            from_email=self.mail_from, to_emails=to, subject=subject,
            plain_text_content=text_body, html_content=html_body,
        )
        mail.custom_arg = CustomArg("idempotency_key", key)
        mail.header = Header("X-Replenish-Key", key)
        mail.category = Category(category)
        return self.post(mail)

    def _write_eml(self, payload, key, to, subject, csv_text) -> str:
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = self.mail_from, to, subject
        m["X-Replenish-Order-Id"] = key
        m.set_content(f"Purchase order {payload['order_id']} (no SendGrid API key configured: written to disk).")
        m.add_alternative(_html(payload), subtype="html")
        m.add_attachment(csv_text.encode(), maintype="text", subtype="csv", filename=f"{payload['order_id']}.csv")
        return self.store_eml(m, key)

    def store_eml(self, m: EmailMessage, key: str) -> str:
        """Write the message atomically as ``<key>.eml`` (its existence is the sent marker)."""
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        target = self.outbox_dir / f"{key}.eml"
        tmp = target.with_suffix(".eml.tmp")
        tmp.write_bytes(bytes(m))
        tmp.replace(target)
        return f"eml:{target} (no SendGrid API key: written to outbox_dir, not emailed)"

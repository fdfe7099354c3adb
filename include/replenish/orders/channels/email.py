"""Orders by email through the SendGrid v3 API (``sendgrid`` library, host = settings.sendgrid_base_url):
plain text and HTML bodies that say the same (a supplier's text-only mail client reads the lines too) and a CSV
attachment.

The order id travels in every mail so a supplier can recognise a repeat: the subject, an
``X-Replenish-Order-Id`` header, a ``Message-ID`` derived from it (the same for every attempt: a mailbox that
keeps message ids collapses an identical repeat) and SendGrid ``custom_args`` (for event webhooks). A possible
duplicate (an earlier attempt may have been delivered) says so in the subject, the first line of the body and
an ``X-Replenish-Possible-Duplicate`` header. SendGrid does not dedupe: the dispatcher's send ledger answers for
it. Without an API key the message is written as ``<order_id>.eml`` to settings.outbox_dir instead (the
external ref says so; the file is the sent marker).
"""

from __future__ import annotations

import base64
import html
import http.client
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.error import URLError

from replenish.orders.channels.base import AMBIGUOUS_HTTP, OUTBOX_REF_PREFIX, ChannelError, checked_key, order_csv

ORDER_HEADER = "X-Replenish-Order-Id"
KEY_HEADER = "X-Replenish-Key"
DUPLICATE_HEADER = "X-Replenish-Possible-Duplicate"


def message_id(key: str, mail_from: str) -> str:
    """``<key@sender-domain>``: derived from the idempotency key, so every attempt of a message has the same."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2]
    if not domain or not all(ch.isalnum() or ch in ".-" for ch in domain):
        domain = "replenish.invalid"
    return f"<{checked_key(key)}@{domain}>"


def order_subject(payload: dict[str, Any], possible_duplicate: bool = False) -> str:
    subject = f"Purchase order {payload['order_id']} - delivery {payload['delivery_date']}"
    return f"POSSIBLE DUPLICATE of order {payload['order_id']}: {subject}" if possible_duplicate else subject


def duplicate_note(what: str) -> str:
    return (f"POSSIBLE DUPLICATE: this may repeat {what}, sent earlier (our system stopped before it could "
            f"confirm that transmission). If you already have {what}, do not process it twice.")


def _html(payload: dict[str, Any], possible_duplicate: bool = False) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(ln['item_id']))}</td><td>{html.escape(str(ln.get('item_name') or ''))}</td>"
        f"<td>{int(ln['qty'])}</td></tr>" for ln in payload["lines"]
    )
    note = (f"<p><strong>{html.escape(duplicate_note('order ' + str(payload['order_id'])))}</strong></p>"
            if possible_duplicate else "")
    return (
        f"{note}<p>Purchase order <b>{html.escape(payload['order_id'])}</b> for {html.escape(_store(payload))}, "
        f"delivery {html.escape(str(payload['delivery_date']))}.</p>"
        f"<table><tr><th>Item</th><th>Name</th><th>Qty</th></tr>{rows}</table>"
    )


def _text(payload: dict[str, Any], possible_duplicate: bool = False) -> str:
    note = duplicate_note(f"order {payload['order_id']}") + "\n\n" if possible_duplicate else ""
    rows = "".join(f"\n  item {ln['item_id']}{' ' + str(ln['item_name']) if ln.get('item_name') else ''}: "
                   f"{int(ln['qty'])}" for ln in payload["lines"])
    return (f"{note}Purchase order {payload['order_id']} for {_store(payload)}, delivery "
            f"{payload['delivery_date']}.\n\nItem: quantity{rows}\n\nThe same lines are attached as CSV.\n")


def _store(payload: dict[str, Any]) -> str:
    """'Filiale Landsberg (store 5)', or 'store 5' where the marts gave no name (hostile text: the callers escape)."""
    name = str(payload.get("store_name") or "").replace("\n", " ").replace("\r", " ")
    return f"{name} (store {payload['store_id']})" if name else f"store {payload['store_id']}"


class EmailChannel:
    name = "email"

    def __init__(
        self, *, api_key: str | None, base_url: str, mail_from: str, outbox_dir: str | Path, sandbox: bool = False,
        timeout: float = 30.0,
    ):
        self.api_key, self.base_url, self.mail_from = api_key, base_url, mail_from
        self.outbox_dir, self.sandbox, self.timeout = Path(outbox_dir), sandbox, timeout

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
            return f"{OUTBOX_REF_PREFIX}{p}" if p.exists() else None
        return None  # the dispatcher's send ledger answers for SendGrid

    def _recipient(self, payload):
        to = (payload.get("supplier") or {}).get("email")
        if not to:
            raise ChannelError(f"no email address for supplier {payload.get('supplier_id')}")
        # from the supplier master (an export): a line break would forge headers, a missing @ bounce
        if not isinstance(to, str) or any(ord(ch) < 32 for ch in to) or "@" not in parseaddr(to)[1]:
            raise ChannelError(f"supplier {payload.get('supplier_id')}: email address {to!r} is not usable")
        return to

    def _headers(self, key: str, id_header: str, possible_duplicate: bool) -> dict[str, str]:
        headers = {id_header: checked_key(key), "Message-ID": message_id(key, self.mail_from)}
        if possible_duplicate:
            headers[DUPLICATE_HEADER] = key
        return headers

    def send(self, payload: dict[str, Any], idempotency_key: str, *, possible_duplicate: bool = False) -> str:
        to = self._recipient(payload)
        subject = order_subject(payload, possible_duplicate)
        headers = self._headers(idempotency_key, ORDER_HEADER, possible_duplicate)
        csv_text = order_csv(payload)
        if not self.api_key:
            return self._write_eml(payload, idempotency_key, to, subject, csv_text, headers, possible_duplicate)
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

        mail = Mail(from_email=self.mail_from, to_emails=to, subject=subject,
                    plain_text_content=_text(payload, possible_duplicate),
                    html_content=_html(payload, possible_duplicate))
        mail.attachment = Attachment(
            FileContent(base64.b64encode(csv_text.encode()).decode()),
            FileName(f"{payload['order_id']}.csv"),
            FileType("text/csv"),
            Disposition("attachment"),
        )
        mail.custom_arg = CustomArg("order_id", idempotency_key)
        if possible_duplicate:
            mail.custom_arg = CustomArg("possible_duplicate", "true")
        mail.header = [Header(k, v) for k, v in headers.items()]
        return self.post(mail)

    def post(self, mail: Any) -> str:
        """POST a ``sendgrid.helpers.mail.Mail`` to /v3/mail/send (sandbox mode when configured).

        Failures say whether SendGrid may have accepted the mail anyway (``ChannelError.maybe_delivered``):
        an HTTP answer is SendGrid's word (except a server or gateway error); a failure to connect or to send
        the request means it never arrived; a lost answer after the request went out means it may have."""
        from python_http_client.exceptions import HTTPError
        from sendgrid import SendGridAPIClient
        from sendgrid.helpers.mail import MailSettings, SandBoxMode

        if self.sandbox:
            ms = MailSettings()
            ms.sandbox_mode = SandBoxMode(True)
            mail.mail_settings = ms
        client = SendGridAPIClient(api_key=self.api_key, host=self.base_url)
        client.client.timeout = self.timeout
        try:
            resp = client.send(mail)
        except HTTPError as exc:
            code = getattr(exc, "status_code", None)
            raise ChannelError(f"SendGrid HTTP {code or '?'}: {getattr(exc, 'body', exc)}",
                               maybe_delivered=code in AMBIGUOUS_HTTP) from exc
        except URLError as exc:  # urllib wraps errors while connecting and sending the request
            raise ChannelError(f"SendGrid unreachable: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:  # the request went out; its answer did not come back
            raise ChannelError(f"SendGrid answer lost: {exc.__class__.__name__}: {exc}",
                               maybe_delivered=True) from exc
        if resp.status_code >= 300:
            raise ChannelError(f"SendGrid HTTP {resp.status_code}", maybe_delivered=resp.status_code in AMBIGUOUS_HTTP)
        msg_id = (resp.headers or {}).get("X-Message-Id") if hasattr(resp.headers, "get") else None
        return f"sendgrid:{msg_id or resp.status_code}"

    def send_message(
        self, *, to: list[str], subject: str, text_body: str, html_body: str, key: str, category: str,
        possible_duplicate: bool = False,
    ) -> str:
        """A plain text + HTML mail that is not an order (buyer digests, run alerts); ``key`` is its
        idempotency key (custom arg, header, Message-ID, and the .eml file name without an API key)."""
        if not to:
            raise ChannelError(f"{category} mail {key}: no recipient")
        headers = self._headers(key, KEY_HEADER, possible_duplicate)
        if possible_duplicate:
            subject = f"POSSIBLE DUPLICATE: {subject}"
            note = duplicate_note("this mail")
            text_body = f"{note}\n\n{text_body}"
            html_body = f"<p><strong>{html.escape(note)}</strong></p>{html_body}"
        if not self.api_key:
            m = EmailMessage()
            m["From"], m["To"], m["Subject"] = self.mail_from, ", ".join(to), subject
            for k, v in headers.items():
                m[k] = v
            m.set_content(text_body)
            m.add_alternative(html_body, subtype="html")
            return self.store_eml(m, key)
        from sendgrid.helpers.mail import Category, CustomArg, Header, Mail

        mail = Mail(
            from_email=self.mail_from, to_emails=to, subject=subject,
            plain_text_content=text_body, html_content=html_body,
        )
        mail.custom_arg = CustomArg("idempotency_key", key)
        if possible_duplicate:
            mail.custom_arg = CustomArg("possible_duplicate", "true")
        mail.header = [Header(k, v) for k, v in headers.items()]
        mail.category = Category(category)
        return self.post(mail)

    def _write_eml(self, payload, key, to, subject, csv_text, headers, possible_duplicate) -> str:
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = self.mail_from, to, subject
        for k, v in headers.items():
            m[k] = v
        m.set_content(_text(payload, possible_duplicate))
        m.add_alternative(_html(payload, possible_duplicate), subtype="html")
        m.add_attachment(csv_text.encode(), maintype="text", subtype="csv", filename=f"{payload['order_id']}.csv")
        return self.store_eml(m, key)

    def store_eml(self, m: EmailMessage, key: str) -> str:
        """Write the message atomically as ``<key>.eml`` (its existence is the sent marker)."""
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        target = self.outbox_dir / f"{checked_key(key)}.eml"
        tmp = target.with_suffix(".eml.tmp")
        tmp.write_bytes(bytes(m))
        tmp.replace(target)
        return f"{OUTBOX_REF_PREFIX}{target} (no SendGrid API key: written to outbox_dir, not emailed)"

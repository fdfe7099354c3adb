"""Plain-language words for the codes a store manager or buyer sees: release reasons, history events, actors.

Codes stay the stable interface (filters, API, CSV); people read these words (the pages, the buyers' digests). A
code may carry a detail after ':' (the item id).
"""

from __future__ import annotations

import re

from replenish.ids import parse_id
from replenish.orders.channels.base import kept_on_disk

REASON_LABELS: dict[str, str] = {
    "auto_release_disabled": "automatic release is off for this supplier or store",
    "quality_gate_missing": "today's data checks did not run",
    "quality_gate_blocked": "today's data failed a blocking check",
    "stock_snapshot_stale": "the closing stock count is missing or out of date",
    "supplier_manual_only": "this supplier takes manual orders only",
    "order_value_over_limit": "order value above the automatic limit",
    "no_usual_quantity": "no usual quantity to compare with",
    "quantity_unusual": "quantity far from the usual",
    "max_deviation": "quantity far from the usual",
    "quantity_improbable_high": "more than demand can plausibly take",
    "quantity_improbable_low": "less than demand will almost surely need",
    "line_risk_waste": "too much money at risk in waste",
    "line_risk_short": "too much margin at risk in lost sales",
    "forecast_interval_wide": "forecast very uncertain",
    "promotion": "promotion running",
    "new_item": "new item",
    "forecast_fallback": "too little sales history for the model",
    "below_min_order_value": "below the supplier's minimum order value",
    "cap_below_moq": "maximum quantity is below the minimum order quantity",
    "cutoff_passed": "proposed after the supplier's cutoff: phone the supplier or reject",
    "cutoff_escalated": "the supplier's cutoff passed without a review",
    "cutoff_skipped": "skipped at the supplier's cutoff",
    "delivery_date_passed": "its delivery date passed before it was sent",
}

STATUS_LABELS: dict[str, str] = {
    "proposed": "proposed",
    "in_review": "to review",
    "approved": "approved",
    "auto_approved": "approved automatically",
    "queued": "queued for sending",
    "sending": "sending",
    "retry": "sending again soon",
    "sent": "sent",
    "acknowledged": "confirmed by the supplier",
    "dead_letter": "sending failed",
    "failed": "failed",
    "rejected": "rejected",
    "cancelled": "cancelled",
    "skipped": "skipped",
}

# Why a person changed a quantity or rejected an order (the codes of order_actions, here for the history too).
EDIT_REASON_LABELS: dict[str, str] = {
    "stock_count": "stock on hand differs",
    "shelf_space": "shelf space",
    "promotion": "promotion / display",
    "local_event": "local event",
    "weather": "weather",
    "forecast_too_high": "forecast too high",
    "forecast_too_low": "forecast too low",
    "supplier_issue": "supplier issue",
    "other": "other",
    "not_needed": "not needed",
    "store_closed": "store closed",
    "supplier_unavailable": "supplier unavailable",
    "duplicate": "duplicate order",
}


def _item_name(item_names: dict[int, str] | None, detail: str) -> str:
    """The name of the item a reason or event names after its ':' (the item id), else 'item <detail>'."""
    iid = parse_id(detail)  # not int(): '３' is no item id, and 5,000 digits would raise instead of render
    name = (item_names or {}).get(iid) if iid is not None else None
    return name if name is not None else f"item {detail}"


def reason_label(code: str, item_names: dict[int, str] | None = None) -> str:
    """'line_risk_waste:3' -> 'too much money at risk in waste (Weizenbroetchen)'; unknown codes readable."""
    base, _, detail = str(code).partition(":")
    label = REASON_LABELS.get(base, base.replace("_", " "))
    if detail:
        label += f" ({_item_name(item_names, detail)})"
    return label


CHANNEL_LABELS = {"email": "e-mail", "edifact": "EDIFACT file", "api": "the supplier's system"}


def channel_label(channel: object) -> str:
    """How an order travels, in words (the order page said "Sending by edifact")."""
    return CHANNEL_LABELS.get(str(channel), str(channel or "its channel").replace("_", " "))


def status_label(status: object) -> str:
    return STATUS_LABELS.get(str(status), str(status).replace("_", " "))


def actor_label(actor: object) -> str:
    """Who did it, in words: people by their user name; the system's actors by what they are."""
    a = str(actor or "")
    kind, _, rest = a.partition(":")
    if kind == "release":
        return "automatic release rules"
    if kind == "cutoff":
        return "supplier cutoff rule"
    if kind == "dispatcher":
        return "dispatcher"
    if kind == "system":
        return "nightly run" if rest in ("propose", "proposal") else "system"
    if kind == "pos":
        return f"till {rest}" if rest else a
    return a


# What the e-mail channel appends to its reference when it only wrote the mail to disk (channels/email.py).
_OUTBOX_NOTE = " (no SendGrid API key"


def _file_name(ref: str) -> str | None:
    """The name of the file a file channel wrote, when ``ref`` is its path (absolute, or a .edi/.eml file)."""
    if ref.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", ref) or ref.lower().endswith((".edi", ".eml")):
        return re.split(r"[\\/]", ref)[-1] or None
    return None


# an absolute path (POSIX or Windows) of two or more parts, up to a quote, a blank or a colon after it; not the path
# of a URL (after "host" or "//")
_PATH = re.compile(r"""(?<![\w:/\\.])(?:[A-Za-z]:)?(?:[\\/][^\s'"\\/:]+)+[\\/]([^\s'"\\/:]+)""")


def without_paths(message: object) -> str:
    """A channel's error as people on the platform, in a digest or at a till may read it: a file it names by the
    file's name, without the server's folders (the outbox keeps the whole message for the data team)."""
    return _PATH.sub(lambda m: m.group(1), str(message or ""))


def sent_words(ref: str) -> str:
    """A sent order's reference as the people on the order page can use it.

    The database keeps the channel's reference as it was (the data team needs the whole path); a store manager needs
    neither the server's folders nor the channels' words: a file channel's file by its name, an e-mail that was only
    written to disk said in words, the reference a supplier's system or SendGrid gave as it is."""
    if not ref:
        return "Delivered to the supplier"
    kind, _, rest = ref.partition(":")
    if kept_on_disk(ref):
        name = _file_name(rest.split(_OUTBOX_NOTE, 1)[0].strip())
        return ("Not e-mailed: no SendGrid key configured, so the mail was kept in the outbox folder"
                + (f" ({name})" if name else ""))
    if kind == "sendgrid":  # SendGrid's message id, or only its HTTP status where it gave none
        return "E-mailed to the supplier" + ("" if re.fullmatch(r"\d{3}", rest) else f" (reference {rest})")
    if re.fullmatch(r"http-\d{3}", ref):  # a supplier's system that answered without a reference
        return "Delivered to the supplier (its system gave no reference)"
    name = _file_name(ref)
    return f"Delivered to the supplier (file {name})" if name else f"Delivered to the supplier (reference {ref})"


def _qty(v: object) -> str:
    return "" if v is None else str(v)


def event_words(event: str, from_value: object, to_value: object, item_names: dict[int, str] | None = None) -> str:
    """One history row in words: 'Quantity of Weizenbroetchen changed from 120 to 130'."""
    base, _, detail = str(event).partition(":")
    item = _item_name(item_names, detail) if detail else ""
    f, t = _qty(from_value), _qty(to_value)
    if base == "created":
        return "Order proposed by the nightly run"
    if base == "reproposed":
        return "Proposal recomputed by a later run"
    if base == "status":
        if f == t:
            return f"Status confirmed: {status_label(t)}"
        return f"Status {status_label(f)} → {status_label(t)}" if f else f"Status: {status_label(t)}"
    if base == "reasons":
        codes = [c for c in t.split(",") if c]
        return ("Held for review: " + "; ".join(reason_label(c, item_names) for c in codes)) if codes \
            else "No longer held for review"
    if base == "line_edited":
        return f"Quantity of {item} changed from {f or 0} to {t or 0}"
    if base == "line_capped":
        return f"Quantity of {item} capped from {f} to {t} by the release rules (money or demand at risk)"
    if base == "line_added":
        return f"{item} added: {t}"
    if base == "line_removed":
        return f"{item} removed (was {f})"
    if base == "edit_reason":
        return f"Reason for {item}: {EDIT_REASON_LABELS.get(t, t)}"
    if base == "cancel_reason":
        return f"Reason: {EDIT_REASON_LABELS.get(t) or REASON_LABELS.get(t, t)}"
    if base == "sent_ref":
        return sent_words(t)
    if base == "escalated":
        return "Cutoff passed without a review: escalated"
    text = base.replace("_", " ").capitalize()
    if f or t:
        text += f": {f} → {t}" if f else f": {t}"
    return text

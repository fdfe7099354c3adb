"""The digest mail: subject, plain text and HTML with deep links into the ordering platform.

Links (relative to ``settings.platform_base_url``): ``/queue`` (the review queue),
``/orders/{order_id}`` (one order) and, beside the forecasts' drift, ``/service`` (stock-outs and why).
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any
from zoneinfo import ZoneInfo

from replenish.digest.content import BuyerDigest
from replenish.platform.labels import reason_label, without_paths

DRIFT = "forecasts against what sold in the last 4 weeks (replenish accuracy)"
MISSED = "never sent, cancelled once its delivery date was over (no delivery from it)"


def order_url(base: str, order_id: str) -> str:
    return f"{base.rstrip('/')}/orders/{order_id}"


def queue_url(base: str) -> str:
    return f"{base.rstrip('/')}/queue"


def service_url(base: str) -> str:
    return f"{base.rstrip('/')}/service"


def _cutoff(value: Any, tz: str) -> str:
    if value is None:
        return "no cutoff"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(ZoneInfo(tz)).strftime("%a %Y-%m-%d %H:%M %Z")


def _money(v: Any) -> str:
    return f"{float(v or 0):,.2f}"


def _named(r: dict[str, Any], kind: str) -> str:
    """'Filiale Landsberg (store 48)', or 'store 48' where the marts hold no name (``kind``: store, supplier)."""
    name, ref = r.get(f"{kind}_name"), f"{kind} {r[f'{kind}_id']}"
    return f"{name} ({ref})" if name else ref


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]      # not str.capitalize(): it lowers the rest, a store's name too


def _blocked(s: dict[str, Any]) -> str:
    return f"{_named(s, 'store')} blocked by the quality gate (its orders wait for review)"


def _why(s: dict[str, Any]) -> list[str]:
    return list(s.get("why") or s.get("reasons") or ())


def _reasons(o: dict[str, Any]) -> str:
    """Why an order waits, in the words the review queue uses (the codes are for filters and the API)."""
    return "; ".join(reason_label(r) for r in o["reasons"]) or "n/a"


def _kept(auto: dict[str, Any]) -> str:
    """The transmitted orders that no supplier has: e-mails only kept in the outbox folder (no SendGrid key)."""
    n = int(auto.get("kept_on_disk") or 0)
    if not n:
        return ""
    return (f"; {n} of them {'was' if n == 1 else 'were'} not e-mailed: no SendGrid key is configured, so "
            f"{'its mail was' if n == 1 else 'their mails were'} kept in the outbox folder and "
            f"{'its supplier does' if n == 1 else 'their suppliers do'} not have {'it' if n == 1 else 'them'}")


def subject(d: BuyerDigest) -> str:
    return (f"Replenish {d.business_date}: {d.review_count} to review, {int(d.auto.get('released') or 0)} sent "
            f"automatically, {d.exception_count} exceptions")


def text_body(d: BuyerDigest, base: str, tz: str) -> str:
    a = d.auto
    suppliers = ", ".join(map(str, d.buyer["suppliers"])) or "-"  # supplier ids are integers
    categories = ", ".join(d.buyer["categories"]) or "-"
    out = [f"Good morning {d.buyer['display_name']},", "",
           f"Replenishment digest for business date {d.business_date} "
           f"(suppliers: {suppliers}; categories: {categories}).",
           "", f"AWAITING YOUR REVIEW: {d.review_count} order(s) - {queue_url(base)}"]
    for o in d.review:
        out.append(f"  - {o['order_id']}: {_named(o, 'store')}, {_named(o, 'supplier')}, delivery "
                   f"{o['delivery_date']}, cutoff {_cutoff(o['cutoff_at'], tz)}, value {_money(o['order_value'])} EUR; "
                   f"why: {_reasons(o)} - {order_url(base, o['order_id'])}")
    if d.review_count > len(d.review):
        out.append(f"  ... and {d.review_count - len(d.review)} more in the queue")
    out += ["", f"SENT AUTOMATICALLY: {int(a.get('released') or 0)} order(s) released, value {_money(a.get('value'))} "
            f"EUR; {int(a.get('sent') or 0)} transmitted (value {_money(a.get('sent_value'))} EUR){_kept(a)}", "",
            "EXCEPTIONS"]
    if not d.exception_count:
        out.append("  none")
    for s in d.blocked_stores:
        out.append(f"  - {_blocked(s)}: {'; '.join(_why(s))}")
    if d.blocked_store_count > len(d.blocked_stores):
        out.append(f"  ... and {d.blocked_store_count - len(d.blocked_stores)} more stores blocked by the quality gate")
    for o in d.dead_letters:
        out.append(f"  - dispatch failed for good: {o['order_id']} ({o['channel']}, {o['attempts']} attempts): "
                   f"{without_paths(o['last_error'])} - {order_url(base, o['order_id'])}")
    for o in d.missed_deliveries:
        out.append(f"  - {MISSED}: {o['order_id']}: {_named(o, 'store')}, {_named(o, 'supplier')}, delivery "
                   f"{o['delivery_date']} - {order_url(base, o['order_id'])}")
    if d.missed_delivery_count > len(d.missed_deliveries):
        out.append(f"  ... and {d.missed_delivery_count - len(d.missed_deliveries)} more orders never sent")
    for f in d.yoy_outliers:
        out.append(f"  - forecast far from last year: {_named(f, 'store')}, {f['item_name']} on {f['target_date']}: "
                   f"P50 {f['p50']} vs {f['last_year']} ({f['change']:+.0%})")
    if d.yoy_outlier_count > len(d.yoy_outliers):
        out.append(f"  ... and {d.yoy_outlier_count - len(d.yoy_outliers)} more forecasts far from last year")
    for r in d.forecast_drift:
        out.append(f"  - {DRIFT}: {r}")
    if d.forecast_drift:
        out.append(f"    stock-outs and why, per item: {service_url(base)}")
    return "\n".join(out) + "\n"


def _td(*cells: str) -> str:
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def html_body(d: BuyerDigest, base: str, tz: str) -> str:
    e = html.escape
    a = d.auto
    rows = "".join(
        _td(f'<a href="{e(order_url(base, o["order_id"]))}">{e(o["order_id"])}</a>', e(_named(o, "store")),
            e(_named(o, "supplier")), e(str(o["delivery_date"])), e(_cutoff(o["cutoff_at"], tz)),
            _money(o["order_value"]), e(_reasons(o)))
        for o in d.review
    )
    more = (f"<p>... and {d.review_count - len(d.review)} more in the queue.</p>"
            if d.review_count > len(d.review) else "")
    exc = [f"<li>{_first_upper(e(_blocked(s)))}:<ul>{''.join(f'<li>{e(w)}</li>' for w in _why(s))}</ul></li>"
           for s in d.blocked_stores]
    if d.blocked_store_count > len(d.blocked_stores):
        exc.append(f"<li>... and {d.blocked_store_count - len(d.blocked_stores)} more stores blocked by the quality "
                   "gate</li>")
    exc += [f'<li>Dispatch failed for good: <a href="{e(order_url(base, o["order_id"]))}">{e(o["order_id"])}</a> '
            f"({e(str(o['channel']))}, {o['attempts']} attempts): {e(without_paths(o['last_error']))}</li>"
            for o in d.dead_letters]
    exc += [f'<li>{_first_upper(MISSED)}: <a href="{e(order_url(base, o["order_id"]))}">{e(o["order_id"])}</a>: '
            f"{e(_named(o, 'store'))}, {e(_named(o, 'supplier'))}, delivery {e(str(o['delivery_date']))}</li>"
            for o in d.missed_deliveries]
    if d.missed_delivery_count > len(d.missed_deliveries):
        exc.append(f"<li>... and {d.missed_delivery_count - len(d.missed_deliveries)} more orders never sent</li>")
    exc += [f"<li>Forecast far from last year: {e(_named(f, 'store'))}, {e(str(f['item_name']))} on "
            f"{e(str(f['target_date']))}: P50 {f['p50']} vs {f['last_year']} ({f['change']:+.0%})</li>"
            for f in d.yoy_outliers]
    if d.yoy_outlier_count > len(d.yoy_outliers):
        exc.append(f"<li>... and {d.yoy_outlier_count - len(d.yoy_outliers)} more forecasts far from last year</li>")
    exc += [f"<li>{_first_upper(DRIFT)}: {e(r)}</li>" for r in d.forecast_drift]
    if d.forecast_drift:
        exc.append(f'<li><a href="{e(service_url(base))}">Stock-outs and why, per item</a></li>')
    return (
        f"<html><body><p>Good morning {e(d.buyer['display_name'])},</p>"
        f"<p>Replenishment digest for business date <b>{e(d.business_date)}</b>.</p>"
        f"<h2>Awaiting your review: {d.review_count}</h2>"
        f'<p><a href="{e(queue_url(base))}">Open the review queue</a></p>'
        + (f"<table><tr><th>Order</th><th>Store</th><th>Supplier</th><th>Delivery</th><th>Cutoff ({e(tz)})</th>"
           f"<th>Value EUR</th><th>Reasons</th></tr>{rows}</table>{more}" if d.review else "")
        + f"<h2>Sent automatically</h2><p>{int(a.get('released') or 0)} order(s) released by the rules, value "
        f"{_money(a.get('value'))} EUR; {int(a.get('sent') or 0)} transmitted (value {_money(a.get('sent_value'))} "
        f"EUR){e(_kept(a))}.</p>"
        f"<h2>Exceptions: {d.exception_count}</h2><ul>{''.join(exc) or '<li>none</li>'}</ul></body></html>"
    )

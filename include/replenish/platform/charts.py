"""The order line's chart as server-rendered SVG: daily sales of the last weeks, the forecast band (P10-P90,
P50 dashed) up to the end of the coverage window, the window itself shaded, and the last orders as bars.

No chart library and no JavaScript (the pages' CSP allows our own scripts only). Every coordinate is a number
and every text is a date, a number or an escaped label; the result is ``Markup``, so the autoescaping
templates insert it as is and nothing else in them needs ``|safe``. Styling lives in app.css (classes only:
the CSP forbids inline styles).
"""

from __future__ import annotations

import datetime as dt
import math

from markupsafe import Markup, escape

W, H = 640, 210
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 26, 34  # plot margins: y labels left, legend on top, dates below


def _nice_step(top: float) -> float:
    raw = top / 4 or 1.0
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def _fmt_day(d: dt.date) -> str:
    return f"{d.day} {d.strftime('%b')}"


def sales_svg(
    sales: list[tuple[dt.date, float]],
    band: list[tuple[dt.date, float, float, float]],
    *,
    label: str = "",
    orders: list[tuple[dt.date, float]] | None = None,
    window: tuple[dt.date, dt.date] | None = None,
) -> Markup:
    """``window``: (delivery date, last day the delivery covers), shaded; ``orders``: (delivery date, quantity)."""
    orders = orders or []
    if not sales and not band:
        return Markup('<p class="muted small">No sales history for this item yet.</p>')
    days = [d for d, _ in sales] + [b[0] for b in band] + [d for d, _ in orders] + (list(window) if window else [])
    d0, d1 = min(days), max(days)
    span = max((d1 - d0).days, 1)
    top = max([v for _, v in sales] + [b[3] for b in band] + [q for _, q in orders] + [1.0])
    step = _nice_step(top)
    top = step * math.ceil(top / step)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    slot = pw / (span + 1)  # one day's width

    def x(d: dt.date) -> float:
        return round(LEFT + slot * ((d - d0).days + 0.5), 1)

    def y(v: float) -> float:
        return round(TOP + ph - ph * max(v, 0.0) / top, 1)

    name = escape(label)
    desc = f"Daily sales from {_fmt_day(d0)} and the forecast until {_fmt_day(d1)}"
    p = [
        f'<svg class="chart-svg" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(desc)}'
        f'{" for " + name if label else ""}" preserveAspectRatio="xMidYMid meet">'
    ]
    # horizontal grid with unit labels
    v = 0.0
    while v <= top + 1e-9:
        p.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v)}" y2="{y(v)}"/>')
        p.append(f'<text class="axis" x="{LEFT - 5}" y="{y(v) + 4}" text-anchor="end">{v:g}</text>')
        v += step
    if window:
        x0 = round(x(window[0]) - slot / 2, 1)
        x1 = round(x(window[1]) + slot / 2, 1)
        p.append(f'<rect class="window" x="{x0}" y="{TOP}" width="{round(x1 - x0, 1)}" height="{ph}"/>')
    # dates: every Monday (and the first day), so a week reads at a glance
    for i in range(span + 1):
        d = d0 + dt.timedelta(days=i)
        if d.isoweekday() == 1 or i == 0:
            p.append(f'<line class="tick" x1="{x(d)}" x2="{x(d)}" y1="{TOP + ph}" y2="{TOP + ph + 4}"/>')
            p.append(f'<text class="axis" x="{x(d)}" y="{TOP + ph + 16}" text-anchor="middle">{_fmt_day(d)}</text>')
    for d, q in orders:
        bw = max(round(slot * 0.6, 1), 2.0)
        p.append(f'<rect class="order" x="{round(x(d) - bw / 2, 1)}" y="{y(q)}" width="{bw}" '
                 f'height="{round(TOP + ph - y(q), 1)}"><title>ordered {q:g} for {_fmt_day(d)}</title></rect>')
    if band:
        upper = " ".join(f"{x(d)},{y(p90)}" for d, _p10, _p50, p90 in band)
        lower = " ".join(f"{x(d)},{y(p10)}" for d, p10, _p50, _p90 in reversed(band))
        p.append(f'<polygon class="band" points="{upper} {lower}"/>')
        p.append('<polyline class="p50" points="' + " ".join(f"{x(d)},{y(p50)}" for d, _a, p50, _b in band) + '"/>')
    if sales:
        p.append('<polyline class="sales" points="' + " ".join(f"{x(d)},{y(s)}" for d, s in sales) + '"/>')
        last_d, last_v = sales[-1]
        p.append(f'<circle class="sales-dot" cx="{x(last_d)}" cy="{y(last_v)}" r="2.5"/>')
    # legend
    items = [("sales", "sold per day")]
    if band:
        items += [("band", "forecast P10–P90"), ("p50", "forecast P50")]
    if orders:
        items.append(("order", "ordered (delivery day)"))
    if window:
        items.append(("window", "this delivery covers"))
    lx: float = LEFT
    for cls, text in items:
        if cls in ("sales", "p50"):
            p.append(f'<line class="{cls}" x1="{lx}" x2="{lx + 16}" y1="11" y2="11"/>')
        else:
            p.append(f'<rect class="{cls}" x="{lx}" y="5" width="16" height="12"/>')
        p.append(f'<text class="legend" x="{lx + 21}" y="15">{text}</text>')
        lx += 26 + 6.4 * len(text)
    p.append("</svg>")
    return Markup("".join(p))  # noqa: S704 - built from numbers, dates and the escaped label only

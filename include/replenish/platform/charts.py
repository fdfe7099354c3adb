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
from dataclasses import dataclass

from markupsafe import Markup, escape

W, H = 640, 210
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 26, 34  # plot margins: y labels left, legend on top, dates below


def _nice_step(top: float) -> float:
    raw = top / 4 or 1.0
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def _fmt_day(d: dt.date) -> str:
    return f"{d.day} {d.strftime('%b')}"


_Legend = list[tuple[str, str, float, int]]  # (class, text, x, row offset)


def _legend(band: bool, orders: bool, window: bool, width: int) -> tuple[_Legend, int]:
    """The legend's entries laid out in rows that fit ``width``; (entries, offset of the last row)."""
    items = [("sales", "sold per day")]
    if band:
        items += [("band", "forecast P10–P90"), ("p50", "forecast P50")]
    if orders:
        items.append(("order", "ordered (delivery day)"))
    if window:
        items.append(("window", "this delivery covers"))
    legend: _Legend = []
    lx: float = LEFT
    ly = 0
    for cls, text_ in items:
        need = 28 + 5.6 * len(text_)
        if lx + need > width and lx > LEFT:
            lx, ly = LEFT, ly + 15
        legend.append((cls, text_, lx, ly))
        lx += need
    return legend, ly


@dataclass(frozen=True)
class _Plot:
    """The plot area: one slot of the x axis per day from ``d0``, values 0..``top`` over its height."""

    d0: dt.date
    span: int  # days after d0
    top: float
    step: float  # between grid lines
    top_m: int  # where the plot starts (below the legend)
    ph: int  # plot height
    slot: float  # one day's width
    width: int

    def x(self, d: dt.date) -> float:
        return round(LEFT + self.slot * ((d - self.d0).days + 0.5), 1)

    def y(self, v: float) -> float:
        return round(self.top_m + self.ph - self.ph * max(v, 0.0) / self.top, 1)


def _background(pl: _Plot, window: tuple[dt.date, dt.date] | None) -> list[str]:
    """Grid with unit labels, the shaded coverage window and the date axis: drawn first, under the data."""
    p = []
    v = 0.0
    while v <= pl.top + 1e-9:
        p.append(f'<line class="grid" x1="{LEFT}" x2="{pl.width - RIGHT}" y1="{pl.y(v)}" y2="{pl.y(v)}"/>')
        p.append(f'<text class="axis" x="{LEFT - 5}" y="{pl.y(v) + 4}" text-anchor="end">{v:g}</text>')
        v += pl.step
    if window:
        x0 = round(pl.x(window[0]) - pl.slot / 2, 1)
        x1 = round(pl.x(window[1]) + pl.slot / 2, 1)
        p.append(f'<rect class="window" x="{x0}" y="{pl.top_m}" width="{round(x1 - x0, 1)}" height="{pl.ph}"/>')
    # dates: every Monday (and the first day), so a week reads at a glance
    base = pl.top_m + pl.ph
    for i in range(pl.span + 1):
        d = pl.d0 + dt.timedelta(days=i)
        if d.isoweekday() == 1 or i == 0:
            p.append(f'<line class="tick" x1="{pl.x(d)}" x2="{pl.x(d)}" y1="{base}" y2="{base + 4}"/>')
            p.append(f'<text class="axis" x="{pl.x(d)}" y="{base + 16}" text-anchor="middle">{_fmt_day(d)}</text>')
    return p


def _data(pl: _Plot, sales: list[tuple[dt.date, float]], band: list[tuple[dt.date, float, float, float]],
          orders: list[tuple[dt.date, float]]) -> list[str]:
    """Order bars, then the forecast band, then the sales line on top (the thing read first)."""
    x, y, slot = pl.x, pl.y, pl.slot
    p = []
    for d, q in orders:
        bw = max(round(slot * 0.34, 1), 2.0)
        p.append(f'<rect class="order" x="{round(x(d) - bw / 2, 1)}" y="{y(q)}" width="{bw}" '
                 f'height="{round(pl.top_m + pl.ph - y(q), 1)}"><title>ordered {q:g} for {_fmt_day(d)}</title></rect>')
    # the forecast as steps, one slot per day: a band of one or two days (a short coverage window) stays visible
    for d, p10, p50, p90 in band:
        bx = round(x(d) - slot / 2, 1)
        p.append(f'<rect class="band" x="{bx}" y="{y(p90)}" width="{round(slot, 1)}" '
                 f'height="{round(max(y(p10) - y(p90), 1.0), 1)}"><title>{_fmt_day(d)}: forecast P10 {p10:.0f}, '
                 f'P50 {p50:.0f}, P90 {p90:.0f}</title></rect>')
        p.append(f'<line class="p50" x1="{bx}" x2="{round(bx + slot, 1)}" y1="{y(p50)}" y2="{y(p50)}"/>')
    if sales:
        p.append('<polyline class="sales" points="' + " ".join(f"{x(d)},{y(s)}" for d, s in sales) + '"/>')
        last_d, last_v = sales[-1]
        p.append(f'<circle class="sales-dot" cx="{x(last_d)}" cy="{y(last_v)}" r="2.5"/>')
    return p


def _legend_svg(legend: _Legend) -> list[str]:
    p = []
    for cls, text_, lx_, ly_ in legend:
        if cls in ("sales", "p50"):
            p.append(f'<line class="{cls}" x1="{lx_}" x2="{lx_ + 16}" y1="{11 + ly_}" y2="{11 + ly_}"/>')
        else:
            p.append(f'<rect class="{cls}" x="{lx_}" y="{5 + ly_}" width="16" height="12"/>')
        p.append(f'<text class="legend" x="{lx_ + 21}" y="{15 + ly_}">{text_}</text>')
    return p


def sales_svg(
    sales: list[tuple[dt.date, float]],
    band: list[tuple[dt.date, float, float, float]],
    *,
    label: str = "",
    orders: list[tuple[dt.date, float]] | None = None,
    window: tuple[dt.date, dt.date] | None = None,
    width: int = W,
    css_class: str = "",
) -> Markup:
    """``window``: (delivery date, last day the delivery covers), shaded; ``orders``: (delivery date, quantity).
    ``width``: the drawing's width in CSS pixels at 1:1 (a phone gets a narrower one with fewer days, so its
    text stays readable)."""
    orders = orders or []
    if not sales and not band:
        return Markup('<p class="muted small">No sales history for this item yet.</p>')
    days = [d for d, _ in sales] + [b[0] for b in band] + [d for d, _ in orders] + (list(window) if window else [])
    d0, d1 = min(days), max(days)
    span = max((d1 - d0).days, 1)
    top = max([v for _, v in sales] + [b[3] for b in band] + [q for _, q in orders] + [1.0])
    step = _nice_step(top)
    top = step * math.ceil(top / step)
    legend, ly = _legend(bool(band), bool(orders), bool(window), width)
    top_m = TOP + ly  # the plot starts below the legend's rows
    pw, ph = width - LEFT - RIGHT, H + ly - top_m - BOTTOM
    pl = _Plot(d0=d0, span=span, top=top, step=step, top_m=top_m, ph=ph, slot=pw / (span + 1), width=width)

    name = escape(label)
    desc = f"Daily sales from {_fmt_day(d0)} and the forecast until {_fmt_day(d1)}"
    p = [
        f'<svg class="chart-svg {escape(css_class)}" viewBox="0 0 {width} {H + ly}" role="img" '
        f'aria-label="{escape(desc)}{" for " + name if label else ""}" preserveAspectRatio="xMidYMid meet">'
    ]
    p += _background(pl, window) + _data(pl, sales, band, orders) + _legend_svg(legend)
    p.append("</svg>")
    return Markup("".join(p))  # noqa: S704 - built from numbers, dates and the escaped label only

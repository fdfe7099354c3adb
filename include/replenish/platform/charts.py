"""A small inline SVG per line: recent daily sales and the forecast band (P10-P90, P50 line) after them.

Rendered on the server (no chart library, no JavaScript). Coordinates are numbers; the one text in it, the
item id of the aria-label, is escaped (an item id can come from a user's added line). Returns ``Markup``, so
the autoescaping templates insert it as is and nothing else in them needs ``|safe``.
"""

from __future__ import annotations

import datetime as dt

from markupsafe import Markup, escape

W, H, PAD = 240, 64, 4


def sales_svg(
    sales: list[tuple[dt.date, float]], band: list[tuple[dt.date, float, float, float]], *, label: str = ""
) -> Markup:
    if not sales and not band:
        return Markup('<span class="muted">no sales history</span>')
    days = [d for d, _ in sales] + [b[0] for b in band]
    d0, d1 = min(days), max(days)
    span = max((d1 - d0).days, 1)
    top = max([v for _, v in sales] + [b[3] for b in band] + [1.0])

    def x(d: dt.date) -> float:
        return round(PAD + (W - 2 * PAD) * (d - d0).days / span, 1)

    def y(v: float) -> float:
        return round(H - PAD - (H - 2 * PAD) * max(v, 0.0) / top, 1)

    parts = [
        f'<svg class="spark" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="sales of the last {len(sales)} days and forecast band{" for " + escape(label) if label else ""}">'
    ]
    if band:
        upper = " ".join(f"{x(d)},{y(p90)}" for d, _p10, _p50, p90 in band)
        lower = " ".join(f"{x(d)},{y(p10)}" for d, p10, _p50, _p90 in reversed(band))
        parts.append(f'<polygon class="band" points="{upper} {lower}"/>')
        parts.append(
            '<polyline class="p50" points="' + " ".join(f"{x(d)},{y(p50)}" for d, _a, p50, _b in band) + '"/>'
        )
    if sales:
        parts.append('<polyline class="sales" points="' + " ".join(f"{x(d)},{y(v)}" for d, v in sales) + '"/>')
    parts.append(f'<text x="{W - PAD}" y="12" text-anchor="end" class="axis">max {top:g}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from numbers and the escaped label only

"""The terminal table and the self-contained HTML page (matplotlib PNGs embedded as base64, as ml.report)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from replenish.simulate.engine import SimulationResult

COLUMNS = [
    ("policy", "policy", "{}"), ("cost", "cost EUR", "{:,.2f}"), ("lost_margin", "lost margin", "{:,.2f}"),
    ("waste_cost", "waste cost", "{:,.2f}"), ("waste_units", "waste u", "{:,}"),
    ("waste_pct_of_delivered", "waste %", "{:.1f}"), ("lost_sales_units", "lost u", "{:,}"),
    ("fill_rate", "fill rate", "{:.3f}"), ("stockout_days", "stock-out days", "{:,}"),
    ("stockout_share", "of days w/ demand", "{:.1%}"),
    ("avg_stock", "avg stock", "{:.1f}"), ("orders", "orders", "{:,}"), ("touchless_rate", "touchless", "{:.2f}"),
]


def _cell(fmt: str, v) -> str:
    return "-" if v is None else fmt.format(v)


def format_table(doc: dict) -> str:
    """Totals per policy, then per item, then the target line."""
    head = [c[1] for c in COLUMNS]

    def block(rows: list[dict], first: str | None = None) -> list[str]:
        cells = [[_cell(f, r.get(k)) for k, _, f in COLUMNS] for r in rows]
        if first:
            cells = [[first + " " + c[0], *c[1:]] for c in cells]
        w = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
        out = ["  ".join(h.ljust(w[i]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(head))]
        out += ["  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(row)) for row in cells]
        return out

    lines = [f"Replenishment simulation {doc['start']} .. {doc['end']}: {doc['stores']} stores x {doc['items']} items, "
             f"{doc['days']} days, seed {doc['seed']}, reviewer adjust x{doc['reviewer_adjust']}, "
             f"release rules v{doc['release_rules_version']}, {doc['runtime_seconds']} s", ""]
    lines += block(doc["policies"])
    items = sorted({r["item_id"] for p in doc["policies"] for r in p["by_item"]})
    for item in items:
        rows = [{**r, "policy": p["policy"]} for p in doc["policies"] for r in p["by_item"] if r["item_id"] == item]
        lines += ["", f"item {item}"] + block(rows)
    t = doc["target"]
    lines += ["", doc["cost_formula"]]
    if "met" in t:
        verdict = "MET" if t["met"] else "NOT MET"
        lines.append(
            f"target (ours cheaper than min_max and same_as_last_week): {verdict}; saving vs min_max "
            f"{t.get('saving_vs_min_max')}, vs same_as_last_week {t.get('saving_vs_same_as_last_week')}; "
            f"gap to perfect foresight {t.get('gap_to_perfect_foresight')} EUR "
            f"({t.get('gap_to_perfect_foresight_pct_of_ours')} % of ours)")
    if "stockout_share_by_item" in t:
        parts = [f"item {i} {r['delivered']:.1%} (asks {r['asked']:.1%})" if r["delivered"] is not None
                 else f"item {i} - (asks {r['asked']:.1%})" for i, r in t["stockout_share_by_item"].items()]
        lines.append(f"ours' stock-out days of the days with demand, within 3 points of what each item asks for: "
                     f"{'yes' if t['stockout_within_3_points'] else 'NO'}; " + ", ".join(parts))
    lines.append(f"conservation (max |in - out - closing| units per policy): {doc['conservation_max_residual_units']}")
    return "\n".join(lines)


def _table_html(rows: list[dict], keys: list[str]) -> str:
    cols = [c for c in COLUMNS if c[0] in rows[0]] if rows else COLUMNS
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys) + "".join(f"<th>{html.escape(c[1])}</th>"
                                                                         for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{r.get(k)}</td>" for k in keys)
                   + "".join(f"<td>{_cell(f, r.get(k))}</td>" for k, _, f in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cost_chart(doc: dict) -> str:
    import matplotlib.pyplot as plt

    from ml.report import png_img

    pols = [p["policy"] for p in doc["policies"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    lm = [p["lost_margin"] for p in doc["policies"]]
    wc = [p["waste_cost"] for p in doc["policies"]]
    ax.bar(pols, lm, label="lost margin")
    ax.bar(pols, wc, bottom=lm, label="waste cost")
    ax.set_ylabel("EUR")
    ax.set_title("Cost per policy (lost margin + waste cost)")
    ax.legend()
    return png_img(fig)


def _cumulative_cost_chart(d: pd.DataFrame, pols: list[str]) -> str:
    import matplotlib.pyplot as plt

    from ml.report import png_img

    daily = d.groupby(["date", "policy"])["cost"].sum().unstack("policy")
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for p in pols:
        ax.plot(daily.index, daily[p].cumsum(), label=p)
    ax.set_title("Cumulative cost over the window")
    ax.set_ylabel("EUR")
    ax.legend()
    fig.autofmt_xdate()
    return png_img(fig)


def _waste_vs_fill_chart(doc: dict) -> str:
    import matplotlib.pyplot as plt

    from ml.report import png_img

    fig, ax = plt.subplots(figsize=(6, 4))
    for p in doc["policies"]:
        xs = [r["waste_pct_of_delivered"] or 0 for r in p["by_item"]]
        ys = [r["fill_rate"] or 0 for r in p["by_item"]]
        ax.scatter(xs, ys, label=p["policy"])
        for r, x, y in zip(p["by_item"], xs, ys, strict=True):
            ax.annotate(str(r["item_id"]), (x, y), fontsize=7)
    ax.set_xlabel("waste % of delivered")
    ax.set_ylabel("fill rate")
    ax.set_title("Waste vs fill rate per item")
    ax.legend(fontsize=8)
    return png_img(fig)


def _one_series_chart(d: pd.DataFrame, pols: list[str], keys: pd.DataFrame) -> str:
    """One store x item: demand, sales and the stock on the shelf per policy. The series of median volume (by
    the first policy's demand): a typical one, not the largest."""
    import matplotlib.pyplot as plt

    from ml.report import png_img

    top = d[d["policy"] == pols[0]].groupby("s")["demand"].sum()
    s = int(top.sort_values().index[len(top) // 2]) if len(top) else 0
    one = d[d["s"] == s]
    fig, ax = plt.subplots(figsize=(9, 3.5))
    first = one[one["policy"] == pols[0]]
    ax.plot(first["date"], first["demand"], color="black", lw=2, label="demand (true)")
    for p in pols:
        g = one[one["policy"] == p]
        ax.plot(g["date"], g["available"], lw=1, alpha=0.8, label=f"{p}: stock at opening")
    ax.set_title(f"Store {keys.at[s, 'store_id']}, item {keys.at[s, 'item_id']} (median-volume series)")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    return png_img(fig)


def _page(doc: dict, figs: list[str]) -> str:
    t = doc["target"]
    verdict = ("met" if t.get("met") else "not met") if "met" in t else "n/a"
    parts = [
        f"<html><head><meta charset='utf-8'><title>Replenishment simulation {doc['start']} .. {doc['end']}</title>",
        "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;margin:1em 0}"
        " td,th{border:1px solid #ccc;padding:3px 6px;text-align:right} th{background:#eee}</style></head><body>",
        f"<h1>Replenishment simulation {doc['start']} .. {doc['end']}</h1>",
        f"<p>{doc['stores']} stores x {doc['items']} items, {doc['days']} days, seed {doc['seed']}, reviewer adjust "
        f"x{doc['reviewer_adjust']}, release rules v{html.escape(str(doc['release_rules_version']))}, runtime "
        f"{doc['runtime_seconds']} s. {html.escape(doc['cost_formula'])}.</p>",
        f"<p>Target (ours cheaper than min_max and same_as_last_week): <b>{verdict}</b>. Gap to perfect foresight: "
        f"{t.get('gap_to_perfect_foresight')} EUR ({t.get('gap_to_perfect_foresight_pct_of_ours')} % of ours).</p>",
        "<h2>Per policy</h2>", _table_html(doc["policies"], []),
        *figs,
        "<h2>Per item</h2>",
        _table_html([{**r, "policy": p["policy"]} for p in doc["policies"] for r in p["by_item"]], ["item_id"]),
        "<h2>Per store</h2>",
        _table_html([{**r, "policy": p["policy"]} for p in doc["policies"] for r in p["by_store"]], ["store_id"]),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_html(doc: dict, result: SimulationResult, path: Path | str) -> Path:
    import matplotlib

    # before pyplot is first imported (by the charts): no display on a server or in a worker
    matplotlib.use("Agg")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pols = [p["policy"] for p in doc["policies"]]
    m = result.world.masters
    d = result.daily.assign(cost=lambda x: x["lost"] * m.terms.margin[x["s"].to_numpy()]
                            + x["waste"] * m.terms.cost[x["s"].to_numpy()])
    figs = [_cost_chart(doc), _cumulative_cost_chart(d, pols), _waste_vs_fill_chart(doc),
            _one_series_chart(d, pols, m.keys)]
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(_page(doc, figs))
    tmp.replace(path)
    return path

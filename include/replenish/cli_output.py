"""What the CLI prints for a person (without ``--json``): aligned tables and sentences on stdout.

With ``--json`` the same documents go out as JSON (replenish.cli._emit). Values from the database or a user are
made one-line safe (control characters shown escaped), so a hostile name cannot move the terminal's cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

JSON_HELP = "Print one JSON document on stdout instead of tables (logs stay on stderr)."


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_cell(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ", ".join(_cell(x) for x in v)
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in str(v))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
          headers: Sequence[str] | None = None) -> str:
    """A plain text table (no box drawing: it pastes into mails and tickets); numbers right-aligned."""
    if not rows:
        return "(none)\n"
    cols = list(columns or rows[0].keys())
    heads = list(headers or [c.replace("_", " ") for c in cols])
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    numeric = [all(isinstance(r.get(c), int | float) and not isinstance(r.get(c), bool) or r.get(c) is None
                   for r in rows) for c in cols]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(heads)]

    def line(values: Sequence[str]) -> str:
        return "  ".join((v.rjust(w) if num else v.ljust(w)) for v, w, num in zip(values, widths, numeric,
                                                                                  strict=True)).rstrip()

    out = [line(heads), line(["-" * w for w in widths])] + [line(r) for r in cells]
    return "\n".join(out) + "\n"


def human(doc: Any) -> str:
    """Any result document as text: a list of records as a table, a mapping as 'key: value' lines (nested
    records as their own tables)."""
    if isinstance(doc, list):
        if doc and all(isinstance(r, dict) for r in doc):
            return table(doc)
        return "".join(f"{_cell(x)}\n" for x in doc)
    if not isinstance(doc, dict):
        return f"{_cell(doc)}\n"
    out: list[str] = []
    nested: list[str] = []
    width = max((len(str(k)) for k in doc), default=0)
    for k, v in doc.items():
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            nested.append(f"\n{str(k).replace('_', ' ')}:\n" + table(v))
        elif isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
            nested.append(f"\n{str(k).replace('_', ' ')}:\n" + table([{"": n, **x} for n, x in v.items()]))
        else:
            out.append(f"{str(k).replace('_', ' ').ljust(width)}  {_cell(v)}")
    return "\n".join(out) + ("\n" if out else "") + "".join(nested)


def status_text(doc: dict[str, Any]) -> str:
    """``replenish status``: the last runs first (what a person wants to know), then the table counts."""
    parts = []
    dag_runs = doc.get("dag_runs") or []
    if dag_runs:
        rows = [{"dag": r["dag_id"], "business date": r["business_date"], "state": r["state"],
                 "started": (r["started_at"] or "")[:19].replace("T", " "),
                 "finished": (r["finished_at"] or "")[:19].replace("T", " "),
                 "orders sent": (r.get("figures") or {}).get("dispatch_sent"),
                 "to review": (r.get("figures") or {}).get("orders_to_review"),
                 "failed tasks": r["task_failures"]} for r in dag_runs]
        parts.append("Airflow runs (latest first):\n" + table(rows))
    runs = doc.get("runs") or []
    if runs:
        rows = [{"run": r["run_id"], "business date": r["business_date"], "state": r["state"],
                 "finished": r["finished_at"][:19].replace("T", " "),
                 "stages": " ".join(f"{k}:{v}" for k, v in (r.get("stages") or {}).items())} for r in runs]
        parts.append("Pipeline stages per run:\n" + table(rows))
    counts = doc.get("tables") or {}
    if counts:
        rows = [{"table": k, "rows": v} for k, v in counts.items() if v]
        empty = [k for k, v in counts.items() if not v]
        text = "Warehouse tables with rows:\n" + table(rows)
        if empty:
            text += f"empty: {', '.join(empty)}\n"
        parts.append(text)
    return "\n".join(parts) if parts else "Nothing recorded yet: run `replenish demo`.\n"

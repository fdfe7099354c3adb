"""What the CLI prints for a person (without ``--json``): aligned tables and sentences on stdout.

With ``--json`` the same documents go out as JSON (``emit``), alone on stdout (``stdout_for_json``). Values from
the database or a user are made one-line safe (control characters shown escaped), so a hostile name cannot move
the terminal's cursor.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from replenish.forecasting.accuracy import CAUSES

JSON_HELP = "Print one JSON document on stdout instead of tables (logs stay on stderr)."
# a reporting command's ``--json`` flag (declare it ``as_json: JsonFlag = False``)
JsonFlag = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


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


def _is_identifier(key: object) -> bool:
    """A number that names something (a port, a process, a store): read as it is written, never '54,329'."""
    k = str(key)
    return k in ("pid", "port", "id") or k.endswith("_id")


def _keyed_cell(key: object, v: Any) -> str:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) and _is_identifier(key) else _cell(v)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
          headers: Sequence[str] | None = None) -> str:
    """A plain text table (no box drawing: it pastes into mails and tickets); numbers right-aligned."""
    if not rows:
        return "(none)\n"
    cols = list(columns or rows[0].keys())
    heads = list(headers or [c.replace("_", " ") for c in cols])
    cells = [[_keyed_cell(c, r.get(c)) for c in cols] for r in rows]
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
            out.append(f"{str(k).replace('_', ' ').ljust(width)}  {_keyed_cell(k, v)}")
    return "\n".join(out) + ("\n" if out else "") + "".join(nested)


def _sent_cell(figures: dict[str, Any]) -> Any:
    """A run's orders sent, and how many of them are e-mails only kept in the outbox folder (no supplier has them)."""
    sent, kept = figures.get("dispatch_sent"), figures.get("dispatch_kept_on_disk")
    return f"{sent} ({kept} not e-mailed)" if kept else sent


def status_text(doc: dict[str, Any]) -> str:
    """``replenish status``: the last runs first (what a person wants to know), then the table counts."""
    parts = []
    dag_runs = doc.get("dag_runs") or []
    if dag_runs:
        rows = [{"dag": r["dag_id"], "business date": r["business_date"], "state": r["state"],
                 "started": (r["started_at"] or "")[:19].replace("T", " "),
                 "finished": (r["finished_at"] or "")[:19].replace("T", " "),
                 "orders sent": _sent_cell(r.get("figures") or {}),
                 "to review": (r.get("figures") or {}).get("orders_to_review"),
                 "forecasts": (r.get("figures") or {}).get("forecast_accuracy"),
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


def _pct(v: Any) -> str:
    return "" if v is None else f"{v:.1%}"


def _coverage(r: dict[str, Any]) -> str:
    lo, hi = r.get("coverage_low"), r.get("coverage_high")
    if lo is None:
        return ""
    return _pct(lo) if lo == hi else f"{_pct(lo)}-{_pct(hi)}"


def accuracy_text(doc: dict[str, Any]) -> str:
    """``replenish accuracy``: the verdict first, then the figures by horizon and by item, then the service."""
    scored = (f", scored {doc['first_target_date']} .. {doc['last_target_date']}" if doc["first_target_date"]
              else "")
    head = (f"Forecasts with target dates in the {doc['days']} days up to {doc['business_date']}{scored}: "
            f"{doc['status']}\n")
    if doc["drift"]:
        head += "".join(f"  - {r}\n" for r in doc["drift"])
    if doc.get("retention_note"):
        head += f"Note: {doc['retention_note']}.\n"
    if doc.get("note"):
        return head + f"No forecast can be scored: {doc['note']}.\n"
    if doc["overall"]["rows"] == 0:
        return head + ("No forecast has met its target date yet: scoring starts once earlier nights' target dates "
                       "are past.\n")

    def rows(key: str | None, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**({key.replace("_", " "): r[key]} if key else {}), "rows": r["rows"],
                 "sold out": r["censored_rows"], "WAPE": r["wape"], "WAPE, backtested rows": r["wape_backtested_rows"],
                 "backtest WAPE": r["backtest_wape"],
                 "bias": _pct(r["bias"]), "P10-P90": _coverage(r), "backtest P10-P90": _pct(r["backtest_coverage"]),
                 "below P10": _pct(r["below_p10"]), "above P90": _pct(r["above_p90_at_least"])} for r in records]

    parts = [head, "All scored forecasts:\n" + table(rows(None, [doc["overall"]])),
             "By horizon (days ahead):\n" + table(rows("horizon", doc["by_horizon"])),
             "By item:\n" + table(rows("item_id", doc["by_item"]))]
    service = [{"item id": s["item_id"], "days with sales": s["days_with_sales"], "sold out": s["stockout_days"],
                "share": _pct(s["stockout_share"]), "asked": _pct(s["asked"])} for s in doc["service_by_item"]]
    parts.append("Days sold out, of the days with sales the forecasts covered, against what the ordering asks "
                 "for:\n" + table(service))
    causes = [{"item id": s["item_id"],
               **{label: (f"{c['stockout_days']}/{c['days_with_sales']}" if (c := s.get("causes", {}).get(k)) else "")
                  for k, label in CAUSES.items()}} for s in doc["service_by_item"]]
    if any(s.get("causes") for s in doc["service_by_item"]):
        parts.append("The same days by where their stock came from (sold out / days with sales): the latest delivery "
                     "within the\nitem's shelf life, and the Replenish order for it:\n" + table(causes))
    parts.append("Sold-out days count at their sales (demand was at least that): the bias reads high by their\n"
                 f"shortfall and P10-P90 is a range. {doc['closed_store_rows']} forecasts of days a store was "
                 "closed are left out.\n")
    return "\n".join(parts)


err = Console(stderr=True)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("airflow", "sqlalchemy", "great_expectations", "dbt", "alembic", "lightgbm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


_json_fd: int | None = None


@contextmanager
def stdout_for_json(as_json: bool) -> Iterator[None]:
    """With --json, stdout must carry one JSON document only.

    dbt, Airflow and GX print to file descriptor 1 directly, so redirecting
    ``sys.stdout`` is not enough: point fd 1 at stderr for the duration of the
    work and keep a duplicate of the real stdout for the document.
    """
    global _json_fd
    if not as_json:
        yield
        return
    sys.stdout.flush()
    _json_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(_json_fd, 1)
        os.close(_json_fd)
        _json_fd = None


def emit(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        payload = (json.dumps(doc, default=str, indent=2) + "\n").encode()
        if _json_fd is not None:
            os.write(_json_fd, payload)
        else:
            sys.stdout.write(payload.decode())
            sys.stdout.flush()
    else:
        # for a person: tables and sentences on stdout (logs stay on stderr), so `... > file` keeps the result
        sys.stdout.write(human(doc))
        sys.stdout.flush()

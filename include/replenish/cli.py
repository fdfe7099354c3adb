"""The ``replenish`` command line.

Reporting commands (run, status, bench) take ``--json``: then stdout carries
exactly one JSON document and everything else (logs, progress) goes to stderr.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(help="Replenish: automated store replenishment.", no_args_is_help=True)
db_app = typer.Typer(help="The warehouse database (embedded PostgreSQL unless REPLENISH_DATABASE_URL is set).")
data_app = typer.Typer(help="Reference data.")
bench_app = typer.Typer(help="Benchmarks (not part of the tests).")
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")

err = Console(stderr=True)


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("airflow", "sqlalchemy", "great_expectations", "dbt", "alembic", "lightgbm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


_json_fd: int | None = None


@contextmanager
def _stdout_for_json(as_json: bool) -> Iterator[None]:
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


def _emit(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        payload = (json.dumps(doc, default=str, indent=2) + "\n").encode()
        if _json_fd is not None:
            os.write(_json_fd, payload)
        else:
            sys.stdout.write(payload.decode())
            sys.stdout.flush()
    else:
        err.print_json(json.dumps(doc, default=str))


@contextmanager
def _progress(description: str) -> Iterator[Any]:
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=False) as prog:
        task_id = prog.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            prog.update(task_id, completed=done, total=total)

        yield update


def _parse_date(value: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{field}: expected YYYY-MM-DD, got {value!r}") from None


# --------------------------------------------------------------------------- db
@db_app.command("start")
def db_start() -> None:
    """Start (or reuse) the embedded server; print its URL."""
    _setup_logging()
    from replenish.database import database_url

    typer.echo(database_url())


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""
    _setup_logging()
    from replenish import embedded_pg
    from replenish.settings import get_settings

    settings = get_settings()
    if settings.database_url:
        err.print("REPLENISH_DATABASE_URL is set: that server is not managed by replenish")
        raise typer.Exit(0)
    st = embedded_pg.stop(settings)
    typer.echo(f"stopped (running={st.running})")


@db_app.command("status")
def db_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Is the database reachable? (Does not start anything.)"""
    from replenish import embedded_pg
    from replenish.settings import get_settings

    settings = get_settings()
    if settings.database_url:
        doc: dict[str, Any] = {"mode": "external", "url": _redact(settings.database_url)}
    else:
        st = embedded_pg.status(settings)
        doc = {"mode": "embedded", "running": st.running, "pid": st.pid, "port": st.port,
               "pgdata": str(st.pgdata), "url": st.url(settings.embedded_database)}
    _emit(doc, as_json)


@db_app.command("url")
def db_url() -> None:
    """Print the warehouse URL (starts the embedded server if needed)."""
    from replenish.database import database_url

    typer.echo(database_url())


def _redact(url: str) -> str:
    if "@" in url and ":" in url.split("@")[0].split("//")[-1]:
        scheme, rest = url.split("//", 1)
        cred, host = rest.split("@", 1)
        return f"{scheme}//{cred.split(':')[0]}:***@{host}"
    return url


# ------------------------------------------------------------------------- data
@data_app.command("import-bakery")
def import_bakery(force: bool = typer.Option(False, help="Rewrite export days that already exist.")) -> None:
    """Fetch the ddop bakery panel (cached), generate the retailer and write the daily exports."""
    _setup_logging()
    from replenish.data.exports import ensure_exports

    with _progress("writing daily exports") as update:
        summary = ensure_exports(force=force, progress=update)
    _emit(summary.to_dict() if hasattr(summary, "to_dict") else dict(summary), False)


@app.command("ingest")
def ingest(
    date: str = typer.Option(..., "--date", help="Business date YYYY-MM-DD"),
    source: str = typer.Option(None, "--source", help="Export root folder (default: the state exports)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Load one business day's exports into the raw layer (replaces that day)."""
    _setup_logging()
    from replenish import pipeline

    day = _parse_date(date, "--date")
    with _stdout_for_json(as_json):
        result = pipeline.extract(day, f"ingest__{uuid.uuid4().hex[:12]}", source=source, backfill=False)
        _emit(result, as_json)


# -------------------------------------------------------------------------- run
@app.command("run")
def run(
    date: str = typer.Option(..., "--date", help="Business date YYYY-MM-DD"),
    to: str = typer.Option(None, "--to", help="Last business date of a range (inclusive)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run the nightly DAG (Airflow, in-process) for one business date or a range."""
    _setup_logging()
    from replenish import pipeline
    from replenish.orchestration import run_dag

    start = _parse_date(date, "--date")
    end = _parse_date(to, "--to") if to else start
    if end < start:
        raise typer.BadParameter("--to is before --date")
    runs = []
    day = start
    failed = False
    with _stdout_for_json(as_json):
        while day <= end:
            err.print(f"[bold]nightly run for business date {day}[/bold]")
            res = run_dag("replenishment_nightly", day)
            res["business_date"] = day.isoformat()
            res["stages"] = pipeline.stage_results(res["run_id"])
            report = res["stages"].get("forecast", {}).get("report")
            if report:
                err.print(f"  forecast report: {report}")
            runs.append(res)
            failed = failed or "success" not in res["state"]
            day += dt.timedelta(days=1)
        doc = runs[0] if len(runs) == 1 else {"runs": runs}
        _emit(doc, as_json)
    if failed:
        raise typer.Exit(1)


# ----------------------------------------------------------------------- status
@app.command("status")
def status(as_json: bool = typer.Option(False, "--json"), limit: int = 10) -> None:
    """Row count of every warehouse table and the last runs with their state."""
    from replenish.status import collect_status

    with _stdout_for_json(as_json):
        _emit(collect_status(limit=limit), as_json)


# ------------------------------------------------------------------------- demo
@app.command("demo")
def demo(as_json: bool = typer.Option(False, "--json")) -> None:
    """Fetch the data, start the embedded DB, run the nightly DAG for the last business date."""
    _setup_logging()
    from replenish import pipeline
    from replenish.data.exports import ensure_exports
    from replenish.database import database_url
    from replenish.orchestration import run_dag
    from replenish.settings import get_settings

    settings = get_settings()
    with _stdout_for_json(as_json):
        err.print(f"database: {database_url()}")
        with _progress("writing daily exports") as update:
            ensure_exports(progress=update)
        last = pipeline.available_export_dates()[-1]
        if settings.today is None:
            # The data ends in 2019: make that "today" so the demo's orders are not in the past
            # and really dispatch (to the outbox folder, without a SendGrid key).
            settings.today = last
        err.print(f"[bold]nightly run for the last business date of the data: {last}[/bold] "
                  "(the first run backfills the history, a few minutes)")
        res = run_dag("replenishment_nightly", last)
        if not _has_current_model():
            # First installation: train once (the weekly DAG), then predict again with the model.
            err.print("[bold]training the first forecast model (weekly DAG forecast_training)[/bold]")
            run_dag("forecast_training", last)
            res = run_dag("replenishment_nightly", last)
        stages = pipeline.stage_results(res["run_id"])
        summary = _demo_summary(last, res, stages)
        from replenish.status import table_counts

        counts = table_counts()
        summary["warehouse_rows"] = {
            "raw_loaded": sum(n for t, n in counts.items() if t.startswith("raw.") and t != "raw.quarantine"
                              and t != "raw.load_batches"),
            "raw_quarantined": counts.get("raw.quarantine", 0),
            "forecasts": counts.get("forecast.forecasts", 0),
            "purchase_orders": counts.get("orders.purchase_orders", 0),
        }
        _emit(summary if not as_json else {**summary, "stages": stages}, as_json)
    err.print("\n[bold]Where to look next[/bold]")
    err.print("  replenish status --json        table counts and last runs")
    err.print("  replenish run --date D --json  one business date again (idempotent)")
    err.print(f"  {settings.reports_dir}  forecast report per run (HTML)")
    err.print(f"  {settings.outbox_dir}  mails written without a SendGrid key")
    err.print(f"  {settings.edi_outbound_dir}  EDIFACT ORDERS files")
    err.print("  SQL: raw.quarantine, ops.quality_results, forecast.forecasts, orders.purchase_orders")
    if "success" not in res["state"]:
        raise typer.Exit(1)


def _has_current_model() -> bool:
    from ml.registry import current_model
    from replenish.database import engine

    return current_model(engine()) is not None


def _demo_summary(day: dt.date, res: dict[str, Any], stages: dict[str, Any]) -> dict[str, Any]:
    ex, tr, va = stages.get("extract", {}), stages.get("transform", {}), stages.get("validate", {})
    return {
        "business_date": day.isoformat(),
        "state": res["state"],
        "rows_loaded_this_run": ex.get("rows_loaded"),
        "rows_quarantined_this_run": ex.get("rows_quarantined"),
        "days_loaded_this_run": ex.get("days"),
        "dbt_models": tr.get("models", {}).get("passed"),
        "dbt_tests": tr.get("tests"),
        "checks_failed_blocking": va.get("failed_blocking"),
        "checks_failed_warning": va.get("failed_warning"),
        "automation_blocked_stores": va.get("blocked_store_ids"),
        "forecast": {k: v for k, v in stages.get("forecast", {}).items() if k != "status"},
        "proposals": stages.get("proposals"),
        "release": stages.get("release"),
        "dispatch": stages.get("dispatch"),
    }


# ------------------------------------------------------------------------ bench
@bench_app.command("forecast")
def bench_forecast(as_json: bool = typer.Option(False, "--json")) -> None:
    """Forecast accuracy on the real bakery panel against baselines and peers (../shared/BENCHMARK.md)."""
    _setup_logging()
    from ml.bench import format_table, run_forecast_bench
    from replenish.data.bakery import load_panel

    with _stdout_for_json(as_json):
        result = run_forecast_bench(load_panel())
        if as_json:
            _emit(result, True)
        else:
            typer.echo(format_table(result))


@bench_app.command("proposals")
def bench_proposals_cmd(
    lines: int = typer.Option(1_000_000, help="store x item lines"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Proposal computation (forecast -> rounding -> explanations) for N store x item lines."""
    _setup_logging()
    from replenish.orders.proposals import bench_proposals

    with _stdout_for_json(as_json):
        _emit(bench_proposals(lines), as_json)


if __name__ == "__main__":  # pragma: no cover
    app()

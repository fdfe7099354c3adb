"""The ``replenish`` command line.

Reporting commands (run, status, bench) take ``--json``: then stdout carries
exactly one JSON document and everything else (logs, progress) goes to stderr.
"""

from __future__ import annotations

import datetime as dt
import importlib
import shlex
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from benchmarks.pipeline import PAST_NIGHTS
from replenish.cli_output import JsonFlag, emit, setup_logging, stdout_for_json
from replenish.cli_output import err as output_console
from replenish.platform.cli_commands import register as register_platform_commands


def _plain_usage_name(self: Any) -> str:
    """Usage lines as people read them: ``replenish users add [OPTIONS] USERNAME`` (typer writes {username})."""
    name = str(self.metavar or self.name or "").upper()
    return name if self.required else f"[{name}]"


typer.core.TyperArgument._usage_display_name = _plain_usage_name  # type: ignore[method-assign]


def _click_errors(name: str) -> tuple[type[BaseException], ...]:
    # typer >= 0.2x runs on its own copy of click (typer._click); older typer on click itself
    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_CLICK_ERROR, _NO_ARGS, _ABORT = (_click_errors(n) for n in ("ClickException", "NoArgsIsHelpError", "Abort"))


class _OneLineErrors(TyperGroup):
    """Bad arguments end in one line on stderr and exit code 2 (never a traceback or a framed panel):
    ``replenish status: error: Invalid value for '--limit': -1 is not in the range 1<=x<=1000.``"""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        from replenish.forecasting.runtime import use_passive_openmp_wait

        # the process entry point: before any command imports lightgbm (and inherited by what it starts)
        use_passive_openmp_wait()
        standalone = kwargs.pop("standalone_mode", True)
        kwargs["standalone_mode"] = False  # errors come back here instead of being printed
        if not standalone:
            return super().main(*args, **kwargs)
        try:
            rv = super().main(*args, **kwargs)
        except _NO_ARGS as e:
            e.show()  # type: ignore[attr-defined]  # a bare group: its help, as before
            sys.exit(e.exit_code)  # type: ignore[attr-defined]
        except _CLICK_ERROR as e:
            ctx = getattr(e, "ctx", None)
            where = ctx.command_path if ctx is not None else "replenish"
            typer.echo(f"{where}: error: {one_line(e.format_message())}", err=True)  # type: ignore[attr-defined]
            sys.exit(e.exit_code)  # type: ignore[attr-defined]
        except _ABORT:
            typer.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        from replenish.interruption import Interrupted

        try:
            return super().invoke(ctx)
        except Interrupted as exc:
            # SIGINT or SIGTERM a command let through (the demo's run): typer would exit 130 without a word
            again = shlex.join(["replenish", *sys.argv[1:]])
            typer.echo(f"replenish: {interrupted_message(exc, again)}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            # Ctrl-C in any other command: typer would exit 130 without a word, click with a bare "Aborted!"
            words = self._command_words(ctx, sys.argv[1:])
            typer.echo(ctrl_c_message(words, shlex.join(["replenish", *sys.argv[1:]])), err=True)
            raise typer.Exit(130) from None

    def _command_words(self, ctx: Any, argv: list[str]) -> list[str]:
        """The command's words in ``argv`` (``["db", "stop"]``): the leading words that name a group's command."""
        words: list[str] = []
        group: Any = self
        for word in argv:
            command = group.get_command(ctx, word) if isinstance(group, TyperGroup) else None
            if command is None:
                break
            words.append(word)
            group = command
        return words


def one_line(message: str) -> str:
    """A message safe for one terminal line: control characters (newlines, ESC of terminal sequences) from
    hostile input are shown escaped, never acted on."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in str(message))


def fail(message: str, param_hint: str | None = None) -> NoReturn:
    """Refuse bad input: one line on stderr, exit code 2."""
    raise typer.BadParameter(message, param_hint=param_hint)


app = typer.Typer(rich_markup_mode=None, help="Replenish: automated store replenishment.", no_args_is_help=True,
                  cls=_OneLineErrors, pretty_exceptions_show_locals=False)  # locals could hold secrets
db_app = typer.Typer(rich_markup_mode=None,
                     help="The warehouse database (embedded PostgreSQL unless REPLENISH_DATABASE_URL is set).")
data_app = typer.Typer(rich_markup_mode=None, help="Reference data.")
bench_app = typer.Typer(rich_markup_mode=None, help="Benchmarks (not part of the tests).")
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
register_platform_commands(app)  # serve, users, api-keys

# the output helpers live in cli_output (the platform's commands use them too); the short names stay for this module
err = output_console
_setup_logging = setup_logging
_stdout_for_json = stdout_for_json
_emit = emit


@contextmanager
def _progress(description: str, *, counted: bool = True) -> Iterator[Any]:
    """A bar on stderr; ``counted=False`` for a step without a count (a pulsing bar and the time elapsed)."""
    columns = [TextColumn("{task.description}"), BarColumn(), *([MofNCompleteColumn()] if counted else []),
               TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=False) as prog:
        task_id = prog.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            prog.update(task_id, completed=done, total=total)

        yield update


# the business date a command works on (parsed, with its error, by _parse_date)
BusinessDate = Annotated[str, typer.Option("--date", help="Business date YYYY-MM-DD")]


def _parse_date(value: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected YYYY-MM-DD, got {value!r}", param_hint=field) from None


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
def db_status(as_json: JsonFlag = False) -> None:
    """Is the database reachable? (Does not start anything.)"""
    from replenish import embedded_pg
    from replenish.settings import get_settings

    settings = get_settings()
    if settings.database_url:
        doc: dict[str, Any] = {"mode": "external", "url": _redact(settings.database_url)}
    else:
        st = embedded_pg.status(settings)
        doc = {"mode": "embedded", "running": st.running, "pid": st.pid, "pgdata": str(st.pgdata)}
        if st.running:
            doc |= {"port": st.port, "url": st.url(settings.embedded_database)}
        else:   # no port or URL of a server that is not there (the port may be another server's)
            doc |= {"port": None, "url": None, "next_start": embedded_pg.next_start(settings)}
    _emit(doc, as_json)


@db_app.command("upgrade")
def db_upgrade(as_json: JsonFlag = False) -> None:
    """Apply the schema migrations up to this release (every command and service also does this on start)."""
    _setup_logging()
    from replenish import migrations
    from replenish.database import database_url

    with _stdout_for_json(as_json):
        result = migrations.upgrade()
        doc = {"database": _redact(database_url()), **result.to_dict()}
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
    _emit(summary.to_dict(), False)


@app.command("ingest")
def ingest(
    date: BusinessDate,
    source: str = typer.Option(None, "--source", help="Export root folder (default: the state exports)."),
    as_json: JsonFlag = False,
) -> None:
    """Load one business day's exports into the raw layer (replaces that day)."""
    _setup_logging()
    from pathlib import Path

    from replenish import pipeline
    from replenish.settings import get_settings

    day = _parse_date(date, "--date")
    root = Path(source) if source else get_settings().exports_dir
    if source and not root.is_dir():
        fail(f"no such folder: {str(root)!r}", "--source")
    if not (root / day.isoformat()).is_dir():
        fail(f"no exports for business date {day} under {str(root)!r} (run `replenish data import-bakery`, "
             "or point --source / REPLENISH_EXPORTS_ROOT at the export folder)", "--date")
    from replenish.extract.connectors import ExportFileError

    with _stdout_for_json(as_json):
        try:
            result = pipeline.extract(day, f"ingest__{uuid.uuid4().hex[:12]}", source=source, backfill=False)
        except ExportFileError as e:   # a file that cannot be read at all: nothing of the day was written
            fail(f"{e} (nothing of {day} was loaded)", "--source" if source else "--date")
        _emit(result, as_json)


@app.command("build")
def build(
    date: BusinessDate,
    full_refresh: bool = typer.Option(
        False, "--full-refresh", help="Rebuild staging and marts from all of raw (after raw was changed by hand)."
    ),
    as_json: JsonFlag = False,
) -> None:
    """dbt build (models + tests) of the warehouse for one business date, outside a nightly run."""
    _setup_logging()
    from replenish.pipeline import loaded_dates
    from replenish.warehouse import run_dbt_build

    day = _parse_date(date, "--date")
    if day not in loaded_dates():
        fail(f"nothing loaded for business date {day}: run `replenish ingest --date {day}` first", "--date")
    with _stdout_for_json(as_json):
        summary = run_dbt_build(day, full_refresh=full_refresh, raise_on_failure=False)
        _emit(summary.to_dict(), as_json)
    if not summary.success:
        raise typer.Exit(1)


# -------------------------------------------------------------------------- run
# the DAGs a person runs for a business date (order_dispatch runs every few minutes on its own)
RUNNABLE_DAGS = ("replenishment_nightly", "forecast_training")


@app.command("run")
def run(
    date: BusinessDate,
    to: str = typer.Option(None, "--to", help="Last business date of a range (inclusive)."),
    dag_id: str = typer.Option("replenishment_nightly", "--dag",
                               help="replenishment_nightly, or forecast_training (the weekly run due by the date: "
                                    "data through the Sunday before it; its model forecasts the nights after)."),
    as_json: JsonFlag = False,
) -> None:
    """Run the nightly DAG (Airflow, in-process) for one business date or a range; or the weekly training.

    A clock set before a date's night (``replenish clock set``, the demo's) moves on to that night first, so a replay
    of nights sees its cutoffs pass and its delivery dates come; the wall clock is never touched."""
    _setup_logging()
    from replenish import pipeline
    from replenish.interruption import Interrupted, trap_signals
    from replenish.settings import get_settings

    if dag_id not in RUNNABLE_DAGS:
        raise typer.BadParameter(f"expected one of {', '.join(RUNNABLE_DAGS)}, got {dag_id!r}", param_hint="--dag")
    start = _parse_date(date, "--date")
    end = _parse_date(to, "--to") if to else start
    if end < start:
        raise typer.BadParameter("--to is before --date")
    loaded = pipeline.loaded_dates()
    if dag_id == "replenishment_nightly":
        # a night without its exports would retry its extract for minutes: refused before the clock moves
        have = set(pipeline.available_export_dates()) | set(loaded)
        absent = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)
                  if start + dt.timedelta(days=i) not in have]
        if absent:
            fail(f"no exports for business date {absent[0]}" + (f" (and {len(absent) - 1} more dates of the range)"
                 if len(absent) > 1 else "") + f" under {str(get_settings().exports_dir)!r}: run `replenish data "
                 "import-bakery`, or point REPLENISH_EXPORTS_ROOT at the export folder", "--date")
    try:
        with _stdout_for_json(as_json), trap_signals():
            failed = _run_nights(dag_id, start, end, loaded, as_json)
    except Interrupted as exc:
        # the nights before the interrupted one are done: the same command from that night on
        day = exc.details.get("business_date", start.isoformat())
        again = f"replenish run --date {day}" + (f" --to {end}" if end.isoformat() > day else "") + (
            f" --dag {dag_id}" if dag_id != "replenishment_nightly" else "")
        typer.echo(f"replenish run: {interrupted_message(exc, again)}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if failed:
        raise typer.Exit(1)


def _run_nights(dag_id: str, start: dt.date, end: dt.date, loaded: set[dt.date], as_json: bool) -> bool:
    """The nights of ``replenish run``, their document on stdout; whether one failed."""
    from replenish import clock, pipeline, run_state
    from replenish.interruption import Interrupted
    from replenish.orchestration import run_dag

    runs: list[dict[str, Any]] = []
    day = start
    failed = False
    try:
        missing = [d for d in pipeline.available_export_dates() if d < start and d not in loaded]
        if len(missing) > 3:
            # a first installation (or days missed): the nightly's extract would load them silently for minutes
            err.print(f"[bold]{len(missing)} earlier export days not loaded yet: loading them first[/bold]")
            backfill = f"backfill__{uuid.uuid4().hex[:8]}"
            with _progress("loading export days") as update:
                pipeline.extract(start, backfill, progress=update)
            if dag_id == "forecast_training":
                # the training reads the warehouse, which a nightly run would have built
                with _progress("building the warehouse (dbt build)", counted=False):
                    pipeline.transform(start, backfill)
        n_days, done = (end - start).days + 1, 0
        while day <= end:
            what = "nightly run" if dag_id == "replenishment_nightly" else dag_id
            err.print(f"[bold]{what} for business date {day}[/bold]")
            if clock.advance_to_night_of(day):
                err.print(f"  clock moved on to the night after {day}: {clock.describe()['now']}")
            with _progress(f"{what} {day}" + (f" ({done + 1} of {n_days})" if n_days > 1 else ""), counted=False):
                res = run_dag(dag_id, day)
            done += 1
            res["business_date"] = day.isoformat()
            res["stages"] = run_state.stage_results(res["run_id"])
            report = res["stages"].get("forecast", {}).get("report")
            if report:
                err.print(f"  forecast report: {report}")
            runs.append(res)
            failed = failed or "success" not in res["state"]
            day += dt.timedelta(days=1)
    except Interrupted as exc:
        exc.details.setdefault("business_date", day.isoformat())  # outside a DAG run: the night it was at
        raise
    doc = runs[0] if len(runs) == 1 else {"runs": runs}
    _emit(doc, as_json)
    return failed


def interrupted_message(exc: Any, again: str) -> str:
    """One line for a command ended by SIGINT or SIGTERM (``replenish.interruption.Interrupted``): where it was,
    what was marked, and the command that picks it up again."""
    d = exc.details
    what = {"replenishment_nightly": "the nightly run", "forecast_training": "the weekly training"}.get(
        d.get("dag_id", ""), d.get("dag_id") or "the command")
    on = f" for business date {d['business_date']}" if d.get("business_date") else ""
    if d.get("run_id") and d.get("marked"):
        tasks = ", ".join(d.get("tasks") or [])
        where = f"during task {tasks} of {what}{on}" if tasks else f"between two tasks of {what}{on}"
        state = f"Airflow run {d['run_id']} is marked failed, and so is its record in ops.pipeline_runs"
    elif d.get("run_id"):
        where = f"during {what}{on}"
        state = (f"Airflow run {d['run_id']} could not be marked failed ({d['mark_error']})" if "mark_error" in d
                 else f"Airflow run {d['run_id']} had ended")
    else:
        where = f"during {what}{on}" if d.get("dag_id") else f"before the DAG run{on} started"
        state = "no Airflow run was under way"
    return (f"interrupted by {exc.signal_name} {where}; {state}. `{again}` redoes it safely: every stage replaces "
            "its own rows, and orders and mails already sent are not sent again.")


# What a command stopped by Ctrl-C leaves, as its last line says; other commands change nothing, or make each
# change in one database transaction (accounts, keys, the clock, schema migrations), which Ctrl-C rolls back.
_AFTER_CTRL_C = {
    "ingest": "the day's load is one transaction, so the day is loaded whole or not at all",
    "build": "dbt replaces each model in one transaction, so each model is either as it was or rebuilt",
    "run": "no DAG run was under way",
    "data import-bakery": "each day's exports are moved into place only once complete, and the days already "
                          "written are skipped next time",
    "simulate": "it writes nothing but its HTML report, at its end, so nothing was written",
    "bench": "a benchmark prints its figures only at its end and never changes the warehouse's data",
    "demo": "the exports it wrote and the days it loaded are kept and not done again",
    "db start": "`replenish db status` tells whether the embedded server started",
    "db url": "`replenish db status` tells whether the embedded server started",
    "db stop": "`replenish db status` tells whether the embedded server stopped",
    "serve": "the platform had not started serving, and nothing is left half-done",
    "airflow-ui": "the Airflow processes it had started are stopped",
}
_NOTHING_HALF_DONE = "nothing is left half-done"


def ctrl_c_message(words: list[str], again: str) -> str:
    """The one line on stderr of a command stopped by Ctrl-C (``replenish run`` has its own,
    :func:`interrupted_message`): the command, what it leaves, and how to run it again."""
    name = " ".join(words)
    left = _AFTER_CTRL_C.get(name) or _AFTER_CTRL_C.get(words[0] if words else "", _NOTHING_HALF_DONE)
    return f"{shlex.join(['replenish', *words])}: interrupted by Ctrl-C; {left}. `{again}` runs it again."


# ----------------------------------------------------------------------- status
@app.command("status")
def status(
    as_json: JsonFlag = False,
    limit: int = typer.Option(10, "--limit", min=1, max=1000, help="How many recent runs to show (1-1000)."),
) -> None:
    """Row count of every warehouse table and the last runs with their state."""
    from replenish import migrations
    from replenish.status import collect_status

    with _stdout_for_json(as_json):
        migrations.ensure_current()
        doc = collect_status(limit=limit)
        if as_json:
            _emit(doc, True)
        else:
            from replenish.cli_output import status_text

            sys.stdout.write(status_text(doc))


# --------------------------------------------------------------------- accuracy
@app.command("accuracy")
def accuracy(
    date: str = typer.Option("", "--date", help="Business date YYYY-MM-DD (default: the clock's last business day)"),
    days: int = typer.Option(28, "--days", min=1, max=366, help="Target dates scored: the DAYS up to --date."),
    as_json: JsonFlag = False,
) -> None:
    """How the stored forecasts met what sold (WAPE, bias, P10-P90 coverage against the model's backtest) and the
    stock-out days the orders delivered against the ones they ask for; names any drift."""
    _setup_logging()
    from replenish import clock, migrations
    from replenish.database import engine
    from replenish.forecasting.accuracy import past_retention, realised_accuracy
    from replenish.settings import get_settings

    today = clock.business_date_for_order_date(clock.today())
    day = _parse_date(date, "--date") if date else today
    with _stdout_for_json(as_json):
        migrations.ensure_current()
        doc = realised_accuracy(engine(), day, days)
        doc["retention_note"] = past_retention(doc, today, get_settings().forecast_retention_days)
        if doc["retention_note"]:
            err.print(f"note: {doc['retention_note']}", markup=False)
        if as_json:
            _emit(doc, True)
        else:
            from replenish.cli_output import accuracy_text

            sys.stdout.write(accuracy_text(doc))


# ------------------------------------------------------------------- airflow ui
@app.command("airflow-ui")
def airflow_ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Address the Airflow UI listens on"),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port of the Airflow UI"),
    scheduler: bool = typer.Option(True, "--scheduler/--no-scheduler",
                                   help="Also start a scheduler, so runs triggered in the UI execute"),
) -> None:
    """The Airflow UI for this project's runs: api-server, dag-processor and scheduler on the warehouse server's
    metadata DB (embedded or REPLENISH_DATABASE_URL), the project's DAGs and monitoring plugin, signed in as
    demo-admin (password printed). Ctrl-C stops all of them."""
    import signal
    import time
    import urllib.request

    from replenish.orchestration import UI_ADMIN, airflow_ui_env, start_airflow_ui, stop_airflow_ui, write_airflow_cfg

    _setup_logging()
    env, password = airflow_ui_env(host=host, port=port)
    write_airflow_cfg(env)
    slots = f", scheduler running up to {env['AIRFLOW__CORE__PARALLELISM']} tasks at once" if scheduler else ""
    err.print(f"starting the Airflow UI (api-server, dag-processor{slots})...")
    procs = start_airflow_ui(env, scheduler=scheduler)
    url = env["AIRFLOW__API__BASE_URL"]
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                fail(f"an Airflow process ended at start: see {env['AIRFLOW_HOME']}/logs/ui-*.log")
            try:
                with urllib.request.urlopen(url + "/api/v2/monitor/health", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        typer.echo(f"Airflow UI: {url}   user {UI_ADMIN}   password {password}")
        err.print(f"(DAGs are paused until you switch them on; logs in {env['AIRFLOW_HOME']}/logs; Ctrl-C stops)")
        stop = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # delivered to sigwait, not to a handler
        signal.sigwait(stop)
    finally:
        stop_airflow_ui(procs)
    err.print(f"Airflow UI on {url} stopped (api-server, dag-processor{', scheduler' if scheduler else ''})")


# ------------------------------------------------------------------------ clock
clock_app = typer.Typer(rich_markup_mode=None,
                        help="The platform's clock (business time zone, 'now' for cutoffs and dispatch).")
app.add_typer(clock_app, name="clock")


@clock_app.command("show")
def clock_show(as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout.")) -> None:
    """What every process takes as "now" and "today"."""
    from replenish import clock

    doc = clock.describe()
    if as_json:
        _emit(doc, True)
    else:
        typer.echo(f"now {doc['now']} ({doc['timezone']}), {doc['mode']}"
                   + (f", set by {doc['set_by']}" if doc["set_by"] else ""))


@clock_app.command("set")
def clock_set(
    when: str = typer.Argument(..., help="Business time YYYY-MM-DDTHH:MM (in the business time zone)"),
    frozen: bool = typer.Option(False, "--frozen", help="Stand still instead of running on in real time."),
) -> None:
    """Pin "now" for every process (nightly, dispatch, platform, CLI), e.g. to replay historical data."""
    from replenish import clock

    try:
        at = dt.datetime.fromisoformat(when)
    except ValueError:
        err.print(f"error: expected YYYY-MM-DDTHH:MM, got {when!r}")
        raise typer.Exit(2) from None
    clock.set_clock(at, frozen=frozen, set_by="cli")
    typer.echo(clock.describe()["now"])


@clock_app.command("reset")
def clock_reset() -> None:
    """Back to the wall clock."""
    from replenish import clock

    clock.reset_clock()
    typer.echo(clock.describe()["now"])


# ------------------------------------------------------------------------- demo
@app.command("demo")
def demo(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout (logs on stderr)."),
    serve: bool | None = typer.Option(
        None, "--serve/--no-serve",
        help="End by starting the ordering platform (default: when run from a terminal, never with --json)"),
) -> None:
    """The demo night: fetch the data, start the embedded DB, set the clock to the night after the data's last
    business day, load the history and train the first model, create the demo users, run the nightly DAG, then
    start the ordering platform over the orders it proposed."""
    _setup_logging()
    from replenish import clock, pipeline, run_state
    from replenish.data.exports import ensure_exports
    from replenish.database import database_url
    from replenish.orchestration import run_dag
    from replenish.platform.cli_commands import seed_and_describe
    from replenish.settings import get_settings

    settings = get_settings()
    with _stdout_for_json(as_json):
        err.print(f"database: {database_url()}")
        with _progress("writing daily exports") as update:
            ensure_exports(progress=update)
        last = pipeline.available_export_dates()[-1]
        # The data ends in 2019: every process (this run, `replenish serve`, the dispatch DAG) shares a clock
        # pinned to the start of the night after the last business day, running on in real time from now.
        clock.set_clock(clock.end_of_business_day(last), set_by="demo")
        err.print(f"clock: {clock.describe()['now']} (the night after the data's last business day, {last})")
        setup: dict[str, Any] = {}
        if not _has_current_model():
            # A new installation: load the history, build the warehouse and train once (the weekly DAG), so the
            # first night forecasts with a model rather than the flagged fallback.
            err.print("[bold]first installation: loading the history and training the first forecast model[/bold]")
            setup_run = f"setup__{uuid.uuid4().hex[:8]}"
            with _progress("loading export days") as update:
                setup["extract"] = pipeline.extract(last, setup_run, progress=update)
            with _progress("building the warehouse (dbt build)", counted=False):
                setup["transform"] = pipeline.transform(last, setup_run)
            with _progress("training the first forecast model (forecast_training DAG)", counted=False):
                setup["train"] = run_dag("forecast_training", last)["state"]
        seed_and_describe()                    # the buyers, whom the night's digests address
        err.print(f"[bold]nightly run for business date {last}[/bold] (orders for {clock.order_date_for(last)})")
        with _progress("nightly run: extract, dbt build, checks, forecasts, orders, dispatch, digests", counted=False):
            res = run_dag("replenishment_nightly", last)
        stages = run_state.stage_results(res["run_id"])
        # again after the night: the manager of each store whose orders now wait in review gets an account
        users = seed_and_describe()
        summary = _demo_summary(last, res, stages)
        if setup:
            ex, tr = setup["extract"], setup["transform"]
            summary["setup"] = {"days_loaded": ex.get("days"), "rows_loaded": ex.get("rows_loaded"),
                                "rows_quarantined": ex.get("rows_quarantined"),
                                "dbt_models": tr.get("models", {}).get("passed"), "dbt_tests": tr.get("tests"),
                                "training": setup["train"]}
        summary["users"] = [{k: v for k, v in u.items() if k in ("username", "role")} for u in users]
        _emit(summary if not as_json else {**summary, "stages": stages}, as_json)
    err.print("\n[bold]Where to look next[/bold]")
    err.print("  replenish serve --demo-users   the ordering platform (new demo passwords printed)")
    err.print("  replenish status               table counts, the night's orders and the last runs")
    err.print("  replenish run --date D --json  one business date again (idempotent: nothing is sent twice)")
    err.print(f"  {settings.outbox_dir}  mails (orders by e-mail, buyer digests) written without a SendGrid key")
    err.print(f"  {settings.edi_outbound_dir}  EDIFACT ORDERS files")
    err.print(f"  {settings.reports_dir}  forecast report per run (HTML)")
    if "success" not in res["state"]:
        raise typer.Exit(1)
    if serve is None:
        serve = not as_json and sys.stdin.isatty() and sys.stdout.isatty()
    if serve:
        from replenish.platform.cli_commands import serve as serve_platform

        serve_platform(host=None, port=None, demo_users=True)


def _has_current_model() -> bool:
    from replenish.database import engine
    from replenish.forecasting.registry import current_model

    return current_model(engine()) is not None


def _demo_summary(day: dt.date, res: dict[str, Any], stages: dict[str, Any]) -> dict[str, Any]:
    from replenish.status import night_outcome

    ex, tr, va = stages.get("extract", {}), stages.get("transform", {}), stages.get("validate", {})
    return {
        "night": night_outcome(day),
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
        "forecast": {k: v for k, v in stages.get("forecast", {}).items() if k not in ("status", "accuracy")},
        # the earlier nights' forecasts against what sold: "no data" on a first night (`replenish accuracy`)
        "forecast_accuracy": (stages.get("forecast", {}).get("accuracy") or {}).get("status"),
        "proposals": stages.get("proposals"),
        "release": stages.get("release"),
        "dispatch": stages.get("dispatch"),
    }


# ------------------------------------------------------------------------ bench
@bench_app.command("forecast")
def bench_forecast(as_json: JsonFlag = False) -> None:
    """Forecast accuracy on the real bakery panel against baselines and peers (docs/benchmark-protocol.md)."""
    _setup_logging()
    from benchmarks.forecast import format_table, run_forecast_bench
    from replenish.data.bakery import load_panel

    with _stdout_for_json(as_json):
        result = run_forecast_bench(load_panel())
        if as_json:
            _emit(result, True)
        else:
            typer.echo(format_table(result))


@bench_app.command("calibration")
def bench_calibration(
    synthetic_stores: int = typer.Option(2, help="stores of the synthetic (M5-like) panel"),
    synthetic_items: int = typer.Option(300, help="items per store of the synthetic panel"),
    retrain_days: int = typer.Option(
        None, "--retrain-days", min=1,
        help="Retrain (and recalibrate) every N days of the test window, as production does weekly (7); "
             "default: one model trained at the training end"),
    as_json: JsonFlag = False,
) -> None:
    """Interval validation table: P10-P90 coverage (target 0.75-0.85), WAPE and bias per panel and series group."""
    _setup_logging()
    from benchmarks.calibration import format_table, run_calibration_bench

    with _stdout_for_json(as_json):
        result = run_calibration_bench(synthetic_stores, synthetic_items, retrain_days)
        if as_json:
            _emit(result, True)
        else:
            typer.echo(format_table(result))


@bench_app.command("forecast-scale")
def bench_forecast_scale(
    case: str = typer.Option("m5", help="m5: train + predict once on an M5-size panel; chain: the weekly training "
                             "(backtest + fit) and the streamed nightly forecast of a 200 x 150 chain"),
    stores: int | None = typer.Option(None, help="stores in the synthetic panel (m5: 10, chain: 200)"),
    items: int | None = typer.Option(None, help="items per store (m5: 3,049 = M5's 30,490 series; chain: 150)"),
    days: int = typer.Option(730, help="days of history"),
    as_json: JsonFlag = False,
) -> None:
    """Time and peak memory at scale on a synthetic panel (targets: < 10 min train + predict, < 8 GiB)."""
    _setup_logging()
    from benchmarks.forecast_scale import format_chain, format_scale, run_chain_bench, run_scale_bench

    if case not in ("m5", "chain"):
        raise typer.BadParameter(f"unknown case {case!r} (m5 or chain)")
    with _stdout_for_json(as_json):
        if case == "chain":
            result = run_chain_bench(stores or 200, items or 150, days)
        else:
            result = run_scale_bench(stores or 10, items or 3049, days)
        if as_json:
            _emit(result, True)
        else:
            typer.echo(format_chain(result) if case == "chain" else format_scale(result))


@bench_app.command("proposals")
def bench_proposals_cmd(
    lines: int = typer.Option(1_000_000, help="store x item lines"),
    as_json: JsonFlag = False,
) -> None:
    """Proposal computation (forecast -> rounding -> explanations) for N store x item lines."""
    _setup_logging()
    from benchmarks.proposals import bench_proposals

    with _stdout_for_json(as_json):
        _emit(bench_proposals(lines), as_json)


@bench_app.command("pipeline")
def bench_pipeline_cmd(
    case: list[str] = typer.Option(["bakery", "chain"], "--case", help="bakery (demo data) and/or chain (synthetic)"),
    stores: int = typer.Option(200, help="synthetic chain: stores"),
    items: int = typer.Option(150, help="synthetic chain: items"),
    days: int = typer.Option(730, help="synthetic chain: days of history"),
    train: bool = typer.Option(True, help="train a model before the measured nightly run (realistic)"),
    keep: bool = typer.Option(False, help="keep each case's database afterwards (for --reuse)"),
    reuse: bool = typer.Option(False, help="run on the database a --keep run left: skip the setup it recorded "
                                           "and measure the nightly again (implies --keep)"),
    past_nights: int = typer.Option(PAST_NIGHTS, help="earlier nights' forecasts stored before the measured "
                                                      "nightly, which scores them (0: a first night, nothing to "
                                                      "score)"),
    as_json: JsonFlag = False,
) -> None:
    """End-to-end nightly run: seconds and peak memory per stage, for the bakery demo and a synthetic chain."""
    _setup_logging()
    from benchmarks.pipeline import bench_pipeline, format_table

    for name, value in (("--stores", stores), ("--items", items)):
        if value < 1:
            raise typer.BadParameter(f"{name} must be >= 1")
    if days < 60:
        raise typer.BadParameter("--days must be >= 60")
    if not 0 <= past_nights <= days - 30:
        raise typer.BadParameter(f"--past-nights must be 0..{days - 30} (the history's days less a month)")
    with _stdout_for_json(as_json):
        doc = bench_pipeline(case, stores=stores, items=items, days=days, train=train, keep=keep, reuse=reuse,
                             past_nights=past_nights)
        if as_json:
            _emit(doc, True)
        else:
            typer.echo(format_table(doc))


@bench_app.command("extract")
def bench_extract_cmd(
    days: int = typer.Option(16, help="history days of the synthetic chain to load"),
    stores: int = typer.Option(200, help="synthetic chain: stores"),
    items: int = typer.Option(150, help="synthetic chain: items"),
    workers: int = typer.Option(0, help="worker processes (0 = one per core)"),
    as_json: JsonFlag = False,
) -> None:
    """History load: in-process vs chunks prepared in worker processes, same days, same database."""
    _setup_logging()
    from benchmarks.extract import bench_extract

    if not 1 <= days <= 59:
        raise typer.BadParameter("--days must be 1..59")
    with _stdout_for_json(as_json):
        _emit(bench_extract(days, stores, items, workers or None), as_json)


@bench_app.command("web")
def bench_web_cmd(
    users: int = typer.Option(50, help="concurrent clients per scenario"),
    duration: int = typer.Option(30, help="seconds of steady-state load per scenario"),
    workers: int = typer.Option(2, help="uvicorn worker processes"),
    as_json: JsonFlag = False,
) -> None:
    """Ordering platform latency (review queue page, proposals API) under N concurrent clients (locust)."""
    _setup_logging()
    from benchmarks.web import format_table, run_web_bench

    with _stdout_for_json(as_json):
        result = run_web_bench(users=users, duration_s=duration, workers=workers)
        if as_json:
            _emit(result, True)
        else:
            typer.echo(format_table(result))


# --------------------------------------------------------------------- simulate
@app.command("simulate")
def simulate_cmd(
    start: str = typer.Option("2019-03-01", "--start", help="First simulated business date YYYY-MM-DD"),
    end: str = typer.Option("2019-04-30", "--end", help="Last simulated business date (inclusive)"),
    seed: int = typer.Option(None, "--seed", help="Retailer / supplier seed (default: REPLENISH_SEED)"),
    stores: str = typer.Option(None, "--stores", help="Comma-separated store ids (default: all 35)"),
    adjust: float = typer.Option(1.0, "--adjust", help="Reviewer: factor applied to orders sent to review"),
    train_stride: int = typer.Option(None, "--train-stride", help="Every N-th training origin (default: model's)"),
    raw_intervals: bool = typer.Option(
        False, "--raw-intervals", help="The quantile models' raw P10/P90, without the backtest's interval calibration"),
    as_json: JsonFlag = False,
) -> None:
    """Closed-loop replay of a window on the real demand: ours vs min/max, same-as-last-week, perfect foresight."""
    _setup_logging()
    from replenish.simulate.report import format_table
    from replenish.simulate.runner import run_simulation

    d0, d1 = _parse_date(start, "--start"), _parse_date(end, "--end")
    try:
        store_ids = [int(s) for s in stores.split(",") if s.strip()] if stores else None
    except ValueError:
        raise typer.BadParameter(f"--stores: expected comma-separated integers, got {stores!r}") from None
    with _stdout_for_json(as_json), Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                             TimeElapsedColumn(), console=err) as prog:
        task_id = prog.add_task("simulating", total=None)

        def update(done: int, total: int, note: str) -> None:
            if total < 0:   # a note (weekly model training) without progress
                prog.update(task_id, description=note)
            else:
                prog.update(task_id, completed=done, total=total, description=f"simulating {note}")

        if train_stride is not None and train_stride < 1:
            raise typer.BadParameter("--train-stride must be >= 1")
        cfg = None
        if train_stride is not None or raw_intervals:
            from ml.config import ForecastConfig

            cfg = ForecastConfig(apply_interval_calibration=not raw_intervals)
            if train_stride is not None:
                cfg = cfg.model_copy(update={"origin_stride": train_stride})
        try:
            doc, _ = run_simulation(d0, d1, seed=seed, stores=store_ids, adjust=adjust, cfg=cfg, progress=update)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        if as_json:
            _emit(doc, True)
    if not as_json:
        typer.echo(format_table(doc))
        typer.echo(f"\nHTML report: {doc['report_path']}")


if __name__ == "__main__":  # pragma: no cover
    app()

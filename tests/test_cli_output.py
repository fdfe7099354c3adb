"""The CLI for a person: every option has help text, usage lines read USERNAME (not {username}), flags show no
<bool>, results are tables on stdout (JSON only with --json)."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import typer

from replenish.cli import app
from replenish.cli_output import human, status_text, table


def _commands(group, path=()):
    for name, cmd in getattr(group, "commands", {}).items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def test_every_option_has_help_text() -> None:
    root = typer.main.get_command(app)
    missing = [f"{' '.join(p)} {param.opts[0]}" for p, cmd in _commands(root) for param in cmd.params
               if param.param_type_name == "option" and not (param.help or "").strip()]
    assert not missing, missing


def test_help_reads_plainly() -> None:
    root = typer.main.get_command(app)
    for path, cmd in _commands(root):
        ctx = typer.Context(cmd, info_name=" ".join(("replenish", *path)))
        text = cmd.get_help(ctx)
        assert "<bool>" not in text, path
        assert "{" not in text.splitlines()[0], (path, text.splitlines()[0])


def test_tables_align_and_escape() -> None:
    out = table([{"name": "a\x1b[2Jb", "rows": 1200}, {"name": "c", "rows": 3}])
    lines = out.splitlines()
    assert lines[0].split() == ["name", "rows"] and "\x1b" not in out and "\\x1b" in out
    assert lines[2].endswith("1,200") and lines[3].endswith("    3")  # numbers right-aligned
    assert human({"a": 1, "runs": [{"x": 1}]}).startswith("a     1\n")
    # numbers that name something are read as written ("port 54,329" was not a port)
    assert human({"pid": 7242, "port": 54329, "rows": 54329}) == "pid   7242\nport  54329\nrows  54,329\n"
    assert table([{"store_id": 1001, "units": 1001}]).splitlines()[2].split() == ["1001", "1,001"]
    buf = io.StringIO()
    with redirect_stdout(buf):
        print(status_text({"tables": {"raw.x": 0}, "runs": [], "dag_runs": []}), end="")
    assert "empty: raw.x" in buf.getvalue()


def test_status_tells_the_orders_only_kept_in_the_outbox_folder_from_the_sent() -> None:
    run = {"dag_id": "replenishment_nightly", "business_date": "2019-04-30", "state": "success", "started_at": None,
           "finished_at": None, "task_failures": 0}
    kept = status_text({"dag_runs": [{**run, "figures": {"dispatch_sent": 68, "dispatch_kept_on_disk": 34}}]})
    assert "68 (34 not e-mailed)" in kept
    sent = status_text({"dag_runs": [{**run, "figures": {"dispatch_sent": 68, "dispatch_kept_on_disk": 0}}]})
    assert "not e-mailed" not in sent and " 68 " in sent


def test_an_accuracy_window_past_the_forecast_retention_says_so() -> None:
    """``replenish accuracy --days`` reaching before the forecasts the nightly keeps names the first kept date
    instead of scoring fewer days in silence."""
    import datetime as dt

    from replenish.cli_output import accuracy_text
    from replenish.forecasting.accuracy import past_retention

    today = dt.date(2031, 6, 30)
    doc = {"business_date": "2031-06-30", "window_start": "2031-05-01", "days": 61, "first_target_date": None,
           "last_target_date": None, "status": "no data", "drift": [], "overall": {"rows": 0}}
    assert past_retention(doc, today, 61) is None            # kept from 2031-04-30: the window is inside
    note = past_retention(doc, today, 35)
    assert note is not None and note.startswith("target dates before 2031-05-26 are past the forecast retention (35")
    assert f"Note: {note}." in accuracy_text({**doc, "retention_note": note})

"""`replenish airflow-ui`: the generated airflow.cfg says what the environment says; the UI's environment; a stop ends
every process it started; and, in a real api-server clicked in Chromium, the monitoring plugin's links to the
platform (nav and DAG run tabs)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.browser import CHROMIUM

from replenish.orchestration import UI_ADMIN, write_airflow_cfg

WORKERS = 8  # the LocalExecutor workers of the stop test's scheduler (AIRFLOW__CORE__PARALLELISM)


def test_airflow_cfg_names_the_project_dags_plugin_and_database(tmp_path: Path) -> None:
    (tmp_path / "airflow.cfg").write_text(
        "[core]\ndags_folder = /x/airflow/dags\n# plugins_folder =\nload_examples = True\n\n"
        "[database]\nsql_alchemy_conn = sqlite:////x/airflow.db\n")
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__DAGS_FOLDER": "/repo/dags",
           "AIRFLOW__CORE__PLUGINS_FOLDER": "/repo/plugins", "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://postgres@127.0.0.1:54329/replenish_airflow",
           "AIRFLOW__API__PORT": "8080"}
    text = write_airflow_cfg(env).read_text()
    assert "sqlite" not in text and "load_examples = True" not in text
    for line in ("dags_folder = /repo/dags", "plugins_folder = /repo/plugins", "load_examples = False",
                 "sql_alchemy_conn = postgresql+psycopg2://postgres@127.0.0.1:54329/replenish_airflow",
                 "[api]", "port = 8080"):
        assert line in text, line
    assert write_airflow_cfg(env).read_text() == text  # idempotent


def test_ui_environment_signs_in_the_demo_admin(tmp_path: Path, monkeypatch) -> None:
    from replenish import orchestration

    monkeypatch.setattr(orchestration, "airflow_env", lambda settings=None: {"AIRFLOW_HOME": str(tmp_path)})
    env, password = orchestration.airflow_ui_env(port=8399)
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{UI_ADMIN}:admin"
    stored = json.loads(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())
    assert stored == {UI_ADMIN: password} and len(password) >= 12
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:8399"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == orchestration.airflow_ui_env(port=8399)[0][
        "AIRFLOW__API_AUTH__JWT_SECRET"]  # one secret for every process and restart


def test_ui_scheduler_forks_one_worker_per_cpu_unless_told(tmp_path: Path, monkeypatch) -> None:
    """LocalExecutor forks ``core.parallelism`` workers when the scheduler starts: Airflow's default was 32 processes
    on a 2-core machine. The bound is the CPUs this process may use (at least 2); an explicit setting wins."""
    from replenish import orchestration

    monkeypatch.setattr(orchestration, "airflow_env", lambda settings=None: {"AIRFLOW_HOME": str(tmp_path)})
    monkeypatch.delenv("AIRFLOW__CORE__PARALLELISM", raising=False)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    assert orchestration.airflow_ui_env()[0]["AIRFLOW__CORE__PARALLELISM"] == str(max(2, cpus))
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "7")
    assert orchestration.airflow_ui_env()[0]["AIRFLOW__CORE__PARALLELISM"] == "7"


@pytest.mark.slow
def test_sigterm_to_the_process_group_ends_every_airflow_process() -> None:
    """`replenish airflow-ui` stopped as a container or a CI job stops it (SIGTERM to its process group): nothing it
    started lives on. Before, the scheduler's LocalExecutor workers got the signal with their scheduler, which was
    killed while it waited for them, and stayed behind as orphans."""
    import psutil

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    # more workers than the machine's bound (a 2-core CI machine would get 2): a scheduler that waits for many
    # workers to end is what outlasted the stop's wait; and the running scheduler forks exactly what it is told
    env["AIRFLOW__CORE__PARALLELISM"] = str(WORKERS)
    proc = subprocess.Popen([sys.executable, "-c", "from replenish.cli import app; app()", "airflow-ui", "--port",
                             str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        assert "Airflow UI:" in proc.stdout.readline(), "the UI did not start"
        deadline = time.monotonic() + 120
        tree: list[psutil.Process] = []
        while time.monotonic() < deadline:
            tree = psutil.Process(proc.pid).children(recursive=True)
            # forked at once when the scheduler starts
            if _local_executor_workers(tree) >= WORKERS:
                time.sleep(1)
                tree = psutil.Process(proc.pid).children(recursive=True)
                break
            time.sleep(1)
        else:
            raise AssertionError(f"no LocalExecutor workers: {[p.cmdline() for p in tree]}")
        assert _local_executor_workers(tree) == WORKERS
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(tree, timeout=10)
        assert not alive, [" ".join(p.cmdline()) for p in alive]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _local_executor_workers(procs: list) -> int:
    return sum("LocalExecutor" in " ".join(p.cmdline()) for p in procs if p.is_running())


# ---------------------------------------------------------------------------------------------
# the plugin's links in a real Airflow 3.3 UI (api-server + dag-processor), clicked in Chromium

BUSINESS_DATE = "2000-01-04"


def _api(base: str, path: str, token: str, method: str = "GET", body: dict | None = None) -> dict:
    import urllib.request

    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


@pytest.fixture(scope="module")
def airflow_ui_with_a_run(tmp_path_factory):
    """The platform (in a thread, framable by this UI only) with a buyer; the Airflow UI on the test metadata DB,
    its plugin linking to that platform; one nightly run recorded in ops.pipeline_runs, with its report and a GX
    validation page from its hours."""
    import datetime as dt
    import time
    import urllib.request
    from urllib.parse import quote

    from sqlalchemy import text
    from support.browser import app_in_thread, free_port, wait_http
    from support.platform_app import make_app, retire, seeded_world

    from replenish.database import engine
    from replenish.orchestration import airflow_ui_env, start_airflow_ui, stop_airflow_ui, write_airflow_cfg
    from replenish.settings import get_settings

    port = free_port()
    ui = f"http://127.0.0.1:{port}"
    world = seeded_world()
    settings = get_settings().model_copy(update={"airflow_ui_origin": ui})
    run_id = f"manual__{dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()}"  # ':' and '+' as Airflow's
    report = settings.reports_dir / f"forecast_{BUSINESS_DATE}.html"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.000Z")
    suite = settings.state / "data_docs" / "validations" / "airflow_ui_probe"
    procs = []
    try:
        with app_in_thread(make_app(settings=settings)) as platform:
            env, password = airflow_ui_env(port=port)
            env["REPLENISH_PLATFORM_BASE_URL"] = platform
            write_airflow_cfg(env)
            procs = start_airflow_ui(env, scheduler=False)
            wait_http(ui + "/api/v2/monitor/health", timeout_s=240, proc=procs[0])
            req = urllib.request.Request(ui + "/auth/token", method="POST",
                                         headers={"Content-Type": "application/json"},
                                         data=json.dumps({"username": UI_ADMIN, "password": password}).encode())
            with urllib.request.urlopen(req, timeout=30) as r:
                token = json.loads(r.read())["access_token"]
            deadline = time.monotonic() + 300
            while True:  # the dag-processor serializes the project's DAGs (a run needs its DAG)
                try:
                    _api(ui, "/api/v2/dags/replenishment_nightly", token)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(2)
            # paused (as the UI starts them): the run stays queued, which is all its page needs
            _api(ui, "/api/v2/dags/replenishment_nightly/dagRuns", token, "POST", {"dag_run_id": run_id,
                                                                                 "logical_date": None})
            with engine().begin() as conn:
                conn.execute(text("INSERT INTO ops.pipeline_runs (dag_id, run_id, business_date, state, started_at) "
                                  "VALUES ('replenishment_nightly', :r, :d, 'running', now() - interval '1 minute')"),
                             {"r": run_id, "d": dt.date.fromisoformat(BUSINESS_DATE)})
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(f"<html><body><h1>Forecast report {BUSINESS_DATE}</h1></body></html>")
            (suite / "__none__" / stamp).mkdir(parents=True, exist_ok=True)
            (suite / "__none__" / stamp / "batch-of-this-run.html").write_text("<html><body>this run's checks</body>"
                                                                              "</html>")
            yield {"ui": ui, "password": password, "platform": platform, "buyer": world["users"]["buyer1"],
                   "run_page": f"{ui}/dags/replenishment_nightly/runs/{quote(run_id, safe='')}"}
            _api(ui, f"/api/v2/dags/replenishment_nightly/dagRuns/{quote(run_id, safe='')}", token, "DELETE")
    finally:
        stop_airflow_ui(procs)   # what the components forked ends with them
        report.unlink(missing_ok=True)
        shutil.rmtree(suite, ignore_errors=True)
        with engine().begin() as conn:
            conn.execute(text("DELETE FROM ops.pipeline_runs WHERE dag_id = 'replenishment_nightly' AND run_id = :r"),
                         {"r": run_id})
        retire(world)


@pytest.mark.slow
@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} missing: run `make chromium`")
def test_the_data_teams_links_open_in_the_airflow_ui(playwright, airflow_ui_with_a_run) -> None:
    from playwright.sync_api import expect
    from support.browser import LAPTOP, chromium_context

    s = airflow_ui_with_a_run
    with chromium_context(playwright, LAPTOP) as ctx:
        page = ctx.new_page()
        page.goto(s["ui"] + "/")
        page.get_by_label("Username").fill(UI_ADMIN)
        page.get_by_label("Password").fill(s["password"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda u: "/auth/login" not in u, timeout=60_000)

        # the navigation: Plugins > Replenish > Review queue opens the platform's queue in a new tab
        page.get_by_role("button", name="Plugins").click()
        page.get_by_role("menuitem", name="Replenish").hover()
        queue = page.get_by_role("menuitem", name="Review queue")
        assert queue.evaluate("e => [e.tagName, e.getAttribute('href'), e.target]") == [
            "A", s["platform"] + "/queue", "_blank"]
        with ctx.expect_page() as opened:
            queue.click()
        tab = opened.value
        tab.wait_for_load_state()
        assert tab.url == s["platform"] + "/login?next=%2Fqueue"  # the platform's sign-in, then the queue
        tab.close()

        # the run's page: a Forecast report tab, framed; the platform's sign-in in it, then that run's report
        page.goto(s["run_page"])
        page.get_by_role("link", name="Forecast report").click()
        frame = page.frame_locator('iframe[title="Forecast report"]')
        frame.get_by_label("Username").fill(s["buyer"]["username"])
        frame.get_by_label("Password").fill(s["buyer"]["password"])
        frame.get_by_role("button", name="Sign in").click()
        expect(frame.get_by_role("heading", name=f"Forecast report {BUSINESS_DATE}")).to_be_visible()

        # the GX Data Docs tab: this run's validation pages, each opening in the tab
        page.get_by_role("link", name="GX Data Docs").click()
        frame = page.frame_locator('iframe[title="GX Data Docs"]')
        frame.get_by_role("link", name="batch-of-this-run").click()
        expect(frame.locator("body")).to_contain_text("this run's checks")

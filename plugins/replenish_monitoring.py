"""Replenish monitoring plugin: a run/task listener and links from the Airflow UI to the platform.

- Listener (``replenish.monitoring.listener``): every DAG run and task attempt is recorded in the
  warehouse (``ops.pipeline_runs`` with the run's business figures, ``ops.task_runs``), and a task's
  final failure (not a retry) sends one alert e-mail. When the warehouse is unreachable (it may be why the
  run fails) the listener reconnects, then spools the record to ``<state>/monitoring-spool`` and delivers it
  with the next hook that reaches the warehouse: a failed run is never left without a trace.
- External views (Airflow 3 replaced the Flask AppBuilder views), as Airflow 3.3's UI shows them:
  - in the navigation, menu Plugins > Replenish: the review queue, the forecast reports and the GX Data Docs,
    each a link opening a new tab (no ``url_route``: a nav view with one is framed, and the platform's pages
    refuse frames). Hrefs: ``REPLENISH_PLATFORM_BASE_URL`` and ``REPLENISH_REPORTS_URL`` /
    ``REPLENISH_DATA_DOCS_URL`` (default: the platform's ``/reports`` and ``/data-docs/``).
  - on each DAG run's page, tabs "Forecast report" and "GX Data Docs": the UI shows only views with a
    ``url_route`` there, framed, with ``{DAG_ID}`` and ``{RUN_ID}`` filled in. They are the platform's
    ``/airflow/...`` pages (that run's report and validations), which only ``REPLENISH_AIRFLOW_UI_ORIGIN`` may
    frame, and only when the platform runs (``replenish serve``) and one is signed in to it as a buyer or admin.

The plugin folder is ``AIRFLOW__CORE__PLUGINS_FOLDER`` (``replenish.orchestration.airflow_env`` points it
here), so ``replenish run`` / ``dag.test()``, the scheduler and the workers all load it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from replenish.monitoring.listener import MonitoringListener


def _external_views() -> list[dict[str, str]]:
    from replenish.monitoring.figures import data_docs_url, reports_url
    from replenish.settings import get_settings

    s = get_settings()
    platform = s.platform_base_url.rstrip("/")
    # the UI fills these in (URL-encoded) on a run's page; a query string keeps any run id one parameter
    run = "dag_id={DAG_ID}&run_id={RUN_ID}"
    return [
        # Airflow 3.3 renders a nav view that is alone outside a menu as a <button href> that opens nothing:
        # three views of one category make the Plugins > Replenish menu, whose entries are real links.
        {"name": "Review queue", "href": f"{platform}/queue", "destination": "nav", "category": "Replenish"},
        {"name": "Forecast reports", "href": reports_url(s), "destination": "nav", "category": "Replenish"},
        {"name": "GX Data Docs", "href": data_docs_url(s), "destination": "nav", "category": "Replenish"},
        # url_route is the tab's path on the run page and must be unique among all plugins' views
        {"name": "Forecast report", "href": f"{platform}/airflow/forecast-report?{run}", "destination": "dag_run",
         "url_route": "replenish-forecast-report", "category": "Replenish"},
        {"name": "GX Data Docs", "href": f"{platform}/airflow/data-docs?{run}", "destination": "dag_run",
         "url_route": "replenish-data-docs", "category": "Replenish"},
    ]


class ReplenishMonitoringPlugin(AirflowPlugin):
    name = "replenish_monitoring"
    listeners = [MonitoringListener()]
    external_views = _external_views()

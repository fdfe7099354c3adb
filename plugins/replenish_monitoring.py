"""Replenish monitoring plugin: a run/task listener and links from the Airflow UI to the platform.

- Listener (``replenish.monitoring.listener``): every DAG run and task attempt is recorded in the
  warehouse (``ops.pipeline_runs`` with the run's business figures, ``ops.task_runs``), and a task's
  final failure (not a retry) sends one alert e-mail. When the warehouse is unreachable (it may be why the
  run fails) the listener reconnects, then spools the record to ``<state>/monitoring-spool`` and delivers it
  with the next hook that reaches the warehouse: a failed run is never left without a trace.
- External views (Airflow 3 replaced the Flask AppBuilder views): the ordering platform's review queue
  in the navigation, the GX Data Docs and the forecast reports on each DAG run. Hrefs come from the
  settings ``REPLENISH_PLATFORM_BASE_URL``, ``REPLENISH_DATA_DOCS_URL`` and ``REPLENISH_REPORTS_URL``
  (defaults: file URLs under the state folder; serve those folders to make the links work remotely).

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
    return [
        {"name": "Review queue", "href": f"{s.platform_base_url.rstrip('/')}/queue", "destination": "nav",
         "category": "Replenish"},
        {"name": "GX Data Docs", "href": data_docs_url(s), "destination": "dag_run", "category": "Replenish"},
        {"name": "Forecast reports", "href": reports_url(s), "destination": "dag_run", "category": "Replenish"},
    ]


class ReplenishMonitoringPlugin(AirflowPlugin):
    name = "replenish_monitoring"
    listeners = [MonitoringListener()]
    external_views = _external_views()

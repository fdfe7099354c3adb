"""Monitoring for data teams: the Airflow listener's records, figures and failure alerts.

- ``run_log``: ``ops.pipeline_runs`` (one row per DAG run, with business figures and links),
  ``ops.task_runs`` (one row per task attempt), ``ops.pipeline_alerts`` (one row per alerted failure);
- ``figures``: a run's business figures from ``ops.stage_results`` and the warehouse;
- ``alerts``: the failure e-mail, once per failed task instance;
- ``listener``: the hook implementations ``plugins/replenish_monitoring.py`` registers, delivering each record
  with reconnects;
- ``spool``: where a record waits (a local file) while the warehouse is unreachable.
"""

"""The pipeline bench's reporting (no database: the bench itself is run by ``make bench-pipeline``)."""

from __future__ import annotations

import os

from replenish.pipeline_bench import MEASURES, NIGHTLY_STAGES, ServerCpu, format_table


def _stage(seconds: float, db: float | None = 1.0) -> dict:
    return {"seconds": seconds, "cpu_seconds": seconds / 2, "db_cpu_seconds": db, "peak_rss_mb": 100.0,
            "load_avg": 1.5}


def test_nightly_is_the_steady_state_run_and_setup_the_first_backfill():
    assert NIGHTLY_STAGES[:2] == ("extract", "transform") and "digest" in NIGHTLY_STAGES
    assert "first backfill" in MEASURES["setup"] and "steady-state" in MEASURES["nightly"]
    doc = {"cpus": 2, "load_avg_before": 0.5, "cases": {"chain": {
        "stores": 20, "items": 150, "days": 730, "business_date": "2019-04-29",
        "setup": {"history_extract": _stage(700), "history_transform": _stage(300)},
        "nightly": {s: _stage(10, None if s == "digest" else 1.0) for s in NIGHTLY_STAGES},
        "first_backfill_seconds": 1000.0, "nightly_seconds": 80.0, "nightly_cpu_seconds": 40.0,
        "nightly_db_cpu_seconds": None, "nightly_peak_rss_mb": 100.0,
        "target_seconds": 600, "meets_target": True}}}
    table = format_table(doc)
    assert "first backfill (history extract + full dbt build) 1000.0 s" in table
    assert "steady-state nightly total 80.0 s" in table and "target < 600 s: met" in table
    assert "load average 0.5 before" in table


def test_server_cpu_counts_a_process_tree_or_says_unknown():
    assert ServerCpu(None).seconds() is None
    own = ServerCpu(os.getpid()).seconds()
    assert own is not None and own > 0

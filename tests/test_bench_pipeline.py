"""The pipeline bench's reporting (no database: the bench itself is run by ``make bench-pipeline``)."""

from __future__ import annotations

import os

from benchmarks.pipeline import MEASURES, NIGHTLY_STAGES, ServerCpu, format_table


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


def test_reuse_skips_the_recorded_setup_up_to_the_first_stage_that_must_run_again():
    from benchmarks.pipeline import setup_plan

    ok, failed = {"status": "success"}, {"status": "failed"}
    everything = {"extract": ok, "transform": ok, "train": ok}
    assert setup_plan(everything, train=True, reuse=False) == (["history_extract", "history_transform", "train"], [])
    assert setup_plan(everything, train=True, reuse=True) == ([], ["history_extract", "history_transform", "train"])
    assert setup_plan({"extract": ok, "transform": failed, "train": ok}, train=True, reuse=True) == (
        ["history_transform", "train"], ["history_extract"])
    assert setup_plan({"extract": ok}, train=False, reuse=True) == (["history_transform"], ["history_extract"])
    assert setup_plan({}, train=True, reuse=True)[1] == []


def test_a_reused_setup_and_a_rerun_are_said_in_the_table():
    doc = {"cpus": 2, "load_avg_before": 0.5, "cases": {"chain": {
        "stores": 200, "items": 150, "days": 730, "business_date": "2019-04-29",
        "setup": {}, "reused": ["history_extract", "history_transform", "train"], "nightly_rerun": True,
        "nightly": {s: _stage(10) for s in NIGHTLY_STAGES}, "first_backfill_seconds": None,
        "nightly_seconds": 80.0, "nightly_cpu_seconds": 40.0, "nightly_db_cpu_seconds": 8.0,
        "nightly_peak_rss_mb": 100.0, "target_seconds": 600, "meets_target": True}}}
    table = format_table(doc)
    assert "reused from the kept database: history_extract, history_transform, train" in table
    assert "first backfill" not in table.split("(setup)")[1] and "re-run of a nightly" in table

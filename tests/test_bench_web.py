"""The web benchmark's plumbing (not its figures: those live in `replenish bench web`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.web import _read_stats, bench_settings, format_table, seed
from replenish.settings import Settings

HEADER = (
    '"Type","Name","Request Count","Failure Count","Median Response Time","Average Response Time",'
    '"Min Response Time","Max Response Time","Average Content Size","Requests/s","Failures/s",'
    '"50%","66%","75%","80%","90%","95%","98%","99%","99.9%","99.99%","100%"'
)


def test_bench_database_is_never_the_warehouse() -> None:
    embedded = bench_settings(Settings(embedded_database="replenish"))
    assert embedded.embedded_database == "replenish_bench_web"
    external = bench_settings(Settings(database_url="postgresql://u:p@db.example:5432/wh"))
    assert external.database_url == "postgresql://u:p@db.example:5432/wh_bench_web"


def test_seed_refuses_other_databases() -> None:
    from replenish.database import engine

    with engine().begin() as conn, pytest.raises(ValueError, match="database: the web bench seeds only"):
        seed(conn, None, None)  # type: ignore[arg-type] - refused before the arguments are used


def test_locust_csv_to_report(tmp_path: Path) -> None:
    (tmp_path / "q_stats.csv").write_text(
        HEADER
        + "\nGET,GET /queue [buyer],120,0,41,52.3,12,310.5,9000,10.1,0,41,50,60,70,90,120,200,260,310,310,310"
        + "\n,Aggregated,120,1,41,52.3,12,310.5,9000,10.1,0,41,50,60,70,90,120,200,260,310,310,310\n"
    )
    stats = _read_stats(tmp_path / "q")
    assert stats["Aggregated"] == {
        "requests": 120, "failures": 1, "rps": 10.1, "p50_ms": 41.0, "p95_ms": 120.0, "p99_ms": 260.0,
        "max_ms": 310.5, "mean_ms": 52.3,
    }  # fmt: skip
    agg = stats.pop("Aggregated")
    result = {
        "users": 50, "duration_s_per_scenario": 30, "uvicorn_workers": 2, "cpus": 2, "target_p95_ms": 200.0,
        "load_average_1m": {"before": 1.0, "after": 2.0}, "meets_target": False,
        "data": {"stores": 35, "suppliers": 4, "open_orders": 280, "orders": 4200, "order_lines": 105000},
        "scenarios": {"review_queue": {**agg, "by_request": stats}},
    }  # fmt: skip
    table = format_table(result)
    assert "GET /queue [buyer]" in table and "MISSES" in table

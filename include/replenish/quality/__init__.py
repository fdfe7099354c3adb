"""Data-quality gate: GX suites on the day's raw tables and marts, per-store automation blocks.

    from replenish.quality import run_quality_gate, latest_gate
    result = run_quality_gate(date(2019, 4, 29), run_id="...")   # never raises on bad data
    latest_gate(engine(), date(2019, 4, 29))                      # {store_id: blocked}
"""

from replenish.quality.gate import (
    CheckResult,
    GateResult,
    build_data_docs,
    is_store_blocked,
    latest_gate,
    latest_run,
    run_quality_gate,
)
from replenish.quality.suites import CHECKS, Check, QualityParams, check_catalog

__all__ = [
    "CHECKS", "Check", "CheckResult", "GateResult", "QualityParams", "build_data_docs",
    "check_catalog", "is_store_blocked", "latest_gate", "latest_run",
    "run_quality_gate",
]

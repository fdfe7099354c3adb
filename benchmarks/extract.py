"""`replenish bench extract`: a history load in-process against the same load in worker processes.

Both load the same export days of the synthetic chain (the exports `replenish bench pipeline` writes, or a 60-day
chain of the same size generated once) into throw-away raw schemas of the configured database, one after the other,
in this process; the schemas are dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any


def _exports(stores: int, items: int) -> tuple[Any, list[dt.date]]:
    from replenish.data.exports import day_complete
    from replenish.settings import get_settings

    bench = get_settings().state / "bench-exports"
    end = dt.date(2019, 4, 29)
    for days in (730, 60):
        root = bench / f"chain-{stores}x{items}x{days}"
        first = end - dt.timedelta(days=days - 1)
        if day_complete(root / end.isoformat()) and day_complete(root / first.isoformat()):
            return root, [first + dt.timedelta(days=i) for i in range(days)]
    from benchmarks.synthetic_chain import generate_chain, write_chain_exports

    root = bench / f"chain-{stores}x{items}x60"
    write_chain_exports(generate_chain(stores, items, 60, end=end), root)
    return root, [end - dt.timedelta(days=59 - i) for i in range(60)]


def bench_extract(days: int = 16, stores: int = 200, items: int = 150, workers: int | None = None) -> dict[str, Any]:
    from replenish.database import engine
    from replenish.extract import CsvExportConnector, load_days

    root, available = _exports(stores, items)
    load = available[-days - 1:-1]      # history days, as a backfill loads them
    workers = workers or os.cpu_count() or 1
    eng = engine()
    result: dict[str, Any] = {"stores": stores, "items": items, "days": len(load), "first_date": load[0].isoformat(),
                              "exports": str(root), "cpus": os.cpu_count(), "workers": workers, "runs": {}}
    for mode, n in (("in_process", 1), ("workers", workers)):
        schema = f"raw_bench_extract_{mode}"
        with eng.begin() as c:
            c.exec_driver_sql(f"drop schema if exists {schema} cascade")
        t0 = time.perf_counter()
        try:
            s = load_days(eng, CsvExportConnector(root), load, schema=schema, workers=n)
            result["runs"][mode] = {"seconds": round(time.perf_counter() - t0, 1), "rows_loaded": s.rows_loaded}
        finally:
            with eng.begin() as c:
                c.exec_driver_sql(f"drop schema if exists {schema} cascade")
    runs = result["runs"]
    result["ratio_workers_over_in_process"] = round(runs["workers"]["seconds"] / runs["in_process"]["seconds"], 3)
    result["load_avg_after"] = round(os.getloadavg()[0], 2)
    return result

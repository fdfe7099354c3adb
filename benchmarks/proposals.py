"""``replenish bench proposals``: the proposal maths (forecast -> rounding -> explanations) on synthetic lines."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from replenish.orders.proposals import compute_proposals, render_explanations


def bench_proposals(n_lines: int = 1_000_000, days: int = 7, seed: int = 0) -> dict:
    """Synthetic benchmark: n_lines store x item lines with ``days`` forecast days each."""
    import resource

    rng = np.random.default_rng(seed)
    n_items = 2000
    store = np.arange(n_lines) // n_items
    item = np.arange(n_lines) % n_items
    base = pd.Timestamp("2024-03-04")
    lead = rng.integers(1, 3, n_lines)
    cov = rng.integers(1, 4, n_lines)
    lines = pd.DataFrame(
        {
            "store_id": store,
            "item_id": item,
            "supplier_id": item % 20,
            "order_date": base,
            "as_of_date": base,
            "delivery_date": base + pd.to_timedelta(lead, "D"),
            "next_delivery_date": base + pd.to_timedelta(lead + cov, "D"),
            "on_hand_qty": rng.integers(0, 40, n_lines).astype(float),
            "on_order_qty": rng.integers(0, 10, n_lines).astype(float),
            "pack_size": rng.choice([1, 6, 12], n_lines),
            "moq": rng.choice([0, 6, 12], n_lines),
            "max_order_qty": np.where(rng.random(n_lines) < 0.5, np.nan, 200.0),
            "service_level": rng.choice([0.9, 0.95, 0.98], n_lines),
            "shelf_life_days": rng.choice([1, 3, 30], n_lines),
            "unit_price": 2.49,
            "unit_cost": 1.10,
            "min_order_value": 50.0,
        }
    )
    p50 = rng.gamma(2.0, 3.0, n_lines * days)
    fc = pd.DataFrame(
        {
            "store_id": np.repeat(store, days),
            "item_id": np.repeat(item, days),
            "target_date": base + pd.to_timedelta(np.tile(np.arange(1, days + 1), n_lines), "D"),
            "p10": p50 * 0.6,
            "p50": p50,
            "p90": p50 * 1.5,
        }
    )
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    res = compute_proposals(lines, fc, explain=False)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    sample = res.lines.iloc[:100_000]
    render_explanations(sample)
    render_per_100k = time.perf_counter() - t1
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = rss1 * 1024  # ru_maxrss is KiB on Linux (process peak, includes the synthetic inputs)
    return {
        "n_lines": n_lines,
        "forecast_rows": len(fc),
        "seconds": round(seconds, 2),
        "explanation_render_seconds_per_100k": round(render_per_100k, 2),
        "peak_rss_mb": round(peak / 2**20, 1),
        "rss_growth_mb": round((rss1 - rss0) / 1024, 1),
        "orders": len(res.orders),
        "lines_with_qty": int((res.lines.proposed_qty > 0).sum()),
    }

"""Scale bench: train once + predict 14 horizons on a synthetic panel of M5 size (30,490 series x 2 years).

Target (issue 3): train + predict < 10 minutes and peak memory < 8 GiB on 2 cores. Memory is measured in-process:
a sampling thread reads the resident set size (VmRSS) every 0.2 s, so each phase gets its own peak, and
``getrusage`` gives the whole-process maximum. The sanity accuracy figures (WAPE over the 14 held-out days against
the same-weekday-last-week naive) only show the model learned something; they are not the accuracy benchmark.
"""

from __future__ import annotations

import resource
import threading
import time
from pathlib import Path

import numpy as np

GIB = 1024**3


def _rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRSS:
    """Samples the RSS in a daemon thread; ``phase(name)`` starts a new phase, ``peaks`` maps phase -> bytes."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peaks: dict[str, int] = {}
        self._phase = "start"
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def _sample(self) -> None:
        r = _rss_bytes()
        if r > self.peaks.get(self._phase, 0):
            self.peaks[self._phase] = r

    def phase(self, name: str) -> None:
        self._sample()
        self._phase = name
        self._sample()

    def __enter__(self) -> PeakRSS:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._sample()
        self._stop.set()
        self._t.join()


def scale_config():
    """The production config with the memory bound that matters at this size (``max_train_rows``)."""
    from ml.config import ForecastConfig

    return ForecastConfig(horizons=list(range(1, 15)), origin_stride=7, max_train_rows=4_000_000)


def run_scale_bench(n_stores: int = 10, n_items: int = 3049, days: int = 730, seed: int = 0, cfg=None) -> dict:
    import pandas as pd

    from benchmarks.synthetic_panel import synthetic_panel
    from ml.model import ForecastModel

    cfg = cfg or scale_config()
    H = cfg.max_horizon
    res: dict = {"series": n_stores * n_items, "days": days, "horizons": H, "num_threads": cfg.lgbm.num_threads,
                 "max_train_rows": cfg.max_train_rows, "origin_stride": cfg.origin_stride}
    with PeakRSS() as mem:
        mem.phase("generate")
        t0 = time.perf_counter()
        frame = synthetic_panel(n_stores, n_items, days, future_days=H, seed=seed)
        res["generate_seconds"] = round(time.perf_counter() - t0, 1)
        res["rows"] = int(len(frame))
        res["frame_gib"] = round(frame.memory_usage(deep=True).sum() / GIB, 2)
        last = pd.Timestamp(frame.loc[frame["y"].notna(), "date"].max())
        origin = last - pd.Timedelta(days=H)          # hold out the last H days to sanity-check the forecast

        mem.phase("train")
        t0 = time.perf_counter()
        model = ForecastModel(cfg).fit(frame, end_date=origin)
        res["train_seconds"] = round(time.perf_counter() - t0, 1)
        res["train_rows"] = model.n_train_rows

        mem.phase("predict")
        t0 = time.perf_counter()
        P = model.predict(frame, [origin], list(range(1, H + 1)))
        res["predict_seconds"] = round(time.perf_counter() - t0, 1)
        res["forecast_rows"] = int(len(P))
        mem.phase("score")
    res["train_predict_seconds"] = round(res["train_seconds"] + res["predict_seconds"], 1)
    res["peak_rss_gib"] = {k: round(v / GIB, 2) for k, v in mem.peaks.items()}
    res["peak_rss_gib_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 2)
    res["targets"] = {"train_predict_seconds": 600, "peak_rss_gib": 8}
    res["within_targets"] = bool(res["train_predict_seconds"] < 600 and res["peak_rss_gib_process"] < 8)
    res.update(_sanity(frame, P, origin))
    return res


def run_chain_bench(n_stores: int = 200, n_items: int = 150, days: int = 730, seed: int = 0, cfg=None,
                    chunk_series: int | None = None, forecasts_to: str | Path | None = None) -> dict:
    """The chain case (200 stores x 150 items = 30,000 series, two years daily): the production code paths without
    the database. The synthetic panel is written to a Parquet file that plays the demand mart (read whole for the
    weekly training, by chunks of stores for the nightly), so the process holds what the pipeline's would.

    Phases: ``train`` = the weekly training (:func:`ml.predict.backtest_and_fit`: backtest model, 28 backtest
    origins, final model; production config), ``nightly`` = the nightly forecast of every store
    (:func:`ml.predict.forecast_stores`, streamed by store chunks, fallback profiled over every store).
    Target (issue 18): both under 8 GiB peak. ``forecasts_to``: the nightly's forecasts written there (Parquet),
    to compare two versions of the code row for row."""
    import tempfile

    import pandas as pd
    import pyarrow.parquet as pq

    from benchmarks.synthetic_panel import synthetic_panel
    from ml.config import ForecastConfig
    from ml.data import compact_frame
    from ml.predict import PREDICT_CHUNK_SERIES, backtest_and_fit, forecast_stores
    from replenish.forecasting.inputs import release_arrow_memory

    cfg = cfg or ForecastConfig()
    chunk_series = chunk_series or PREDICT_CHUNK_SERIES
    H = cfg.max_horizon
    res: dict = {"case": "chain", "series": n_stores * n_items, "stores": n_stores, "items": n_items, "days": days,
                 "horizons": H, "num_threads": cfg.lgbm.num_threads, "max_train_rows": cfg.max_train_rows,
                 "origin_stride": cfg.origin_stride, "chunk_series": chunk_series}
    with PeakRSS() as mem, tempfile.TemporaryDirectory(prefix="replenish-chain-") as tmp:
        mart = Path(tmp) / "mart.parquet"
        mem.phase("generate")
        t0 = time.perf_counter()
        frame = synthetic_panel(n_stores, n_items, days, future_days=H, seed=seed)
        res["rows"] = int(len(frame))
        end = pd.Timestamp(frame.loc[frame["y"].notna(), "date"].max())
        # row groups of a few stores: a chunk's read touches its own stores' groups only, like the mart's scan
        frame.to_parquet(mart, index=False, row_group_size=n_items * (days + H) * 4)
        del frame
        res["generate_seconds"] = round(time.perf_counter() - t0, 1)

        def read(filters=None, columns=None) -> pd.DataFrame:
            f = pq.read_table(mart, filters=filters, columns=columns).to_pandas(split_blocks=True, self_destruct=True)
            f["y"] = f["y"].astype("float64")          # the mart's units are float8
            f = compact_frame(f)
            release_arrow_memory()      # as the database path does after its read (1.1 GiB of the two years here)
            return f

        mem.phase("train")
        t0 = time.perf_counter()
        model, P, metrics = backtest_and_fit(read(), end, cfg)
        res["train_seconds"] = round(time.perf_counter() - t0, 1)
        res["train_rows"] = model.n_train_rows
        res["backtest_wape"] = round(float(metrics["wape"]), 4)
        del P

        mem.phase("nightly")
        t0 = time.perf_counter()
        stores = sorted(int(s) for s in pq.read_table(mart, columns=["store_id"]).column(0).unique().to_pylist())

        def history(items):
            narrow = ["store_id", "item_id", "date", "y", "is_stockout"]
            f = read(None if items is None else [("item_id", "in", list(items))], narrow)
            return f[f["date"] <= end]

        F = forecast_stores(model, cfg, end, stores, lambda chunk: read([("store_id", "in", chunk)]), history,
                            chunk_series)
        res["nightly_seconds"] = round(time.perf_counter() - t0, 1)
        res["forecast_rows"] = int(len(F))
        res["fallback_rows"] = int(F["is_fallback"].sum())
        if forecasts_to is not None:
            F[["store_id", "item_id", "horizon", "p10", "p50", "p90", "is_fallback"]].to_parquet(forecasts_to)
        del F
        mem.phase("end")
    res["peak_rss_gib"] = {k: round(v / GIB, 2) for k, v in mem.peaks.items()}
    res["peak_rss_gib_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 2)
    res["targets"] = {"peak_rss_gib": 8}
    res["within_targets"] = bool(res["peak_rss_gib"].get("train", 0) < 8 and res["peak_rss_gib"].get("nightly", 0) < 8)
    return res


def format_chain(res: dict) -> str:
    p = res["peak_rss_gib"]
    return "\n".join([
        f"synthetic chain: {res['stores']} stores x {res['items']} items = {res['series']:,} series x {res['days']} "
        f"days ({res['rows']:,} rows), generated in {res['generate_seconds']} s",
        f"weekly training: {res['train_seconds']:>7.1f} s  (backtest + final fit, {res['train_rows']:,} rows, "
        f"backtest WAPE {res['backtest_wape']:.3f}), peak RSS {p.get('train')} GiB (target < 8)",
        f"nightly forecast: {res['nightly_seconds']:>6.1f} s  ({res['forecast_rows']:,} forecasts, "
        f"{res['fallback_rows']:,} fallback, chunks of ~{res['chunk_series']:,} series), peak RSS {p.get('nightly')} "
        "GiB (target < 8)",
        "peak RSS GiB by phase: " + ", ".join(f"{k} {v}" for k, v in p.items()) +
        f"; process max {res['peak_rss_gib_process']} GiB",
        f"within targets: {res['within_targets']}",
    ])


def _sanity(frame, P, origin) -> dict:
    """WAPE of P50 and of the same-weekday-last-week naive on the held-out days, P10-P90 coverage."""
    import pandas as pd

    truth = frame.loc[(frame["date"] > origin) & frame["y"].notna(), ["store_id", "item_id", "date", "y"]]
    truth = truth.rename(columns={"date": "target_date"})
    last_week = frame.loc[(frame["date"] > origin - pd.Timedelta(days=7)) & (frame["date"] <= origin),
                          ["store_id", "item_id", "date", "y"]]
    d = P.drop(columns="y").merge(truth, on=["store_id", "item_id", "target_date"])
    d["dow"] = d["target_date"].dt.dayofweek
    lw = last_week.assign(dow=last_week["date"].dt.dayofweek).rename(columns={"y": "naive"})
    d = d.merge(lw[["store_id", "item_id", "dow", "naive"]], on=["store_id", "item_id", "dow"], how="left")
    y = d["y"].to_numpy(float)
    sy = y.sum()
    return {"sanity_wape_p50": round(float(np.abs(y - d["p50"]).sum() / sy), 4),
            "sanity_wape_seasonal_naive": round(float(np.nansum(np.abs(y - d["naive"])) / sy), 4),
            "sanity_coverage_p10_p90": round(float(((y >= d["p10"]) & (y <= d["p90"])).mean()), 4)}


def format_scale(res: dict) -> str:
    p = res["peak_rss_gib"]
    return "\n".join([
        f"synthetic panel: {res['series']:,} series x {res['days']} days ({res['rows']:,} rows, "
        f"{res['frame_gib']} GiB), generated in {res['generate_seconds']} s",
        f"train:   {res['train_seconds']:>7.1f} s  ({res['train_rows']:,} rows, {res['num_threads']} threads, "
        f"origin stride {res['origin_stride']}, max_train_rows {res['max_train_rows']:,})",
        f"predict: {res['predict_seconds']:>7.1f} s  ({res['forecast_rows']:,} forecasts, h=1..{res['horizons']})",
        f"train + predict: {res['train_predict_seconds']:.1f} s (target < 600 s)",
        "peak RSS GiB by phase: " + ", ".join(f"{k} {v}" for k, v in p.items()) +
        f"; process max {res['peak_rss_gib_process']} GiB (target < 8)",
        f"within targets: {res['within_targets']}",
        f"sanity (held-out {res['horizons']} days): WAPE P50 {res['sanity_wape_p50']:.3f} vs seasonal naive "
        f"{res['sanity_wape_seasonal_naive']:.3f}; P10-P90 coverage {res['sanity_coverage_p10_p90']:.3f}",
    ])


if __name__ == "__main__":
    import json
    import sys

    from replenish.forecasting.runtime import use_passive_openmp_wait

    use_passive_openmp_wait()  # run as a script: before lightgbm loads
    r = run_scale_bench(n_items=int(sys.argv[1]) if len(sys.argv) > 1 else 3049)
    print(format_scale(r))
    print(json.dumps(r))

"""``replenish simulate``: build the world, run the four policies, summarise, write the HTML page."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from replenish.simulate.engine import Progress, SimulationResult, simulate
from replenish.simulate.metrics import summarize
from replenish.simulate.policies import MinMax, Ours, PerfectForesight, SameAsLastWeek
from replenish.simulate.world import World, build_world

if TYPE_CHECKING:
    import pandas as pd

    from ml.config import ForecastConfig
    from replenish.settings import Settings

DEFAULT_START = dt.date(2019, 3, 1)
DEFAULT_END = dt.date(2019, 4, 30)


def default_policies(world: World, cfg: ForecastConfig | None = None, progress: Progress | None = None) -> list:
    def note(msg: str) -> None:
        if progress:
            progress(-1, -1, msg)

    m = world.masters
    return [Ours(m, cfg, on_train=note), MinMax(m), SameAsLastWeek(m), PerfectForesight(m, world.demand)]


def run_simulation(start: dt.date = DEFAULT_START, end: dt.date = DEFAULT_END, *, seed: int | None = None,
                   stores: list[int] | None = None, adjust: float = 1.0, cfg: ForecastConfig | None = None,
                   panel: pd.DataFrame | None = None, settings: Settings | None = None,
                   progress: Progress | None = None, report: bool = True) -> tuple[dict, SimulationResult]:
    """Run the closed-loop replay; returns (summary document, raw result). Writes nothing but the HTML page
    (``settings.reports_dir / simulation_<start>_<end>.html``) and never touches the warehouse."""
    from replenish.data.bakery import load_panel
    from replenish.settings import get_settings

    settings = settings or get_settings()
    seed = settings.seed if seed is None else int(seed)
    panel = panel if panel is not None else load_panel(settings)
    world = build_world(panel, start, end, seed=seed, stores=stores)
    policies = default_policies(world, cfg, progress)
    result = simulate(world, policies, adjust=adjust, progress=progress)
    doc = summarize(result)
    ours = policies[0].cfg
    doc["forecast_training"] = {"schedule": "weekly: Monday, on data through Sunday (as the forecast_training DAG)",
                                "origin_stride": ours.origin_stride, "config_fingerprint": ours.fingerprint(),
                                "quantile_fits": "one thread per quantile, 1 LightGBM thread each (simulate.training)"}
    if report:
        from replenish.simulate.report import write_html

        path = Path(settings.reports_dir) / f"simulation_{start}_{end}.html"
        doc["report_path"] = str(write_html(doc, result, path))
    return doc, result

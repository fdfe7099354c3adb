"""Process set-up for running LightGBM: OpenMP threads that wait passively.

LightGBM's OpenMP threads spin while they wait. On a shared machine (more runnable jobs than cores) the spinning
threads steal each other's time slices: the bakery bench fit took 117 s with the default policy and 17-26 s with
passive waiting at the same load (2 cores, load ~5-6). The OpenMP runtime reads ``OMP_WAIT_POLICY`` once, when it
loads (with ``lightgbm``), so the variable is set by the entry points of the processes that run LightGBM, before
they import it: the ``replenish`` command (and so every process it starts: Airflow's components and their tasks,
the benchmarks' children), the pipeline's forecast and train stages (the DAG tasks of an Airflow that ``replenish``
did not start), the benchmarks run as scripts and the test session. Never at the import of a library module
(``ml`` sets nothing): importing a module must not change the process. An explicit ``OMP_WAIT_POLICY`` wins.
"""

from __future__ import annotations

import os


def use_passive_openmp_wait() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it; call before ``lightgbm`` is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

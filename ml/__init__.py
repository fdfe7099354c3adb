"""Replenish forecasting: direct multi-horizon global LightGBM quantile model, baselines, backtest, bench."""

import os

# LightGBM's OpenMP threads spin while they wait. On a shared machine (more runnable jobs than cores) the spinning
# threads steal each other's time slices: the bakery bench fit took 117 s with the default policy and 17-26 s with
# passive waiting at the same load (2 cores, load ~5-6). Set before the OpenMP runtime loads (i.e. before lightgbm
# is imported) to take effect; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

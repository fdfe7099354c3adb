"""Replenish forecasting: direct multi-horizon global LightGBM quantile model, baselines, backtest metrics.

A library on frames: it reads no database, no settings and no environment, and importing it changes nothing in the
process (the entry points that run LightGBM set its OpenMP wait policy: ``replenish.forecasting.runtime``).
"""

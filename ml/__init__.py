"""Replenish forecasting: direct multi-horizon global LightGBM quantile model, baselines, backtest, bench."""

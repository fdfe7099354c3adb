"""Global LightGBM, horizon as a feature, one quantile model per quantile (P10/P50/P90).

Target = y / scale (scale = mean of the last 28 observed days at the origin); stock-out target rows are
masked from the training loss (weight 0 -> dropped) and stock-out days are NaN in target-derived features.
Series with a short history use :func:`item_profile_fallback` (never errors, never zero).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ml.config import ForecastConfig
from ml.features import build_features, feature_columns, make_grid

if TYPE_CHECKING:
    import lightgbm as lgb
    import pandas as pd


# rows of features built at once when predicting many origins (about 0.5 GiB of float32 features)
PREDICT_CHUNK_ROWS = 2_000_000
# candidate training rows whose features are built at once (before the max_train_rows subsample)
TRAIN_CHUNK_ROWS = 2_000_000
# predict(fallback=False) keeps each row's calibration group in these columns, so a caller that fills the
# short-history rows later (over more stores) can calibrate them as a single pass would (calibrate_fallback)
GROUP_PREFIX = "_group_"
GROUP_KEYS = ("volume", "intermittency", "history")


def _capacity(candidates: int, frac: float) -> int:
    """Rows to preallocate for a Bernoulli(frac) sample of ``candidates`` rows: the mean plus six standard
    deviations (the filters only remove rows), so the matrix practically never has to grow."""
    if frac >= 1.0:
        return min(candidates, 4_000_000)
    mean = candidates * frac
    return min(candidates, int(np.ceil(mean + 6 * np.sqrt(mean * (1 - frac)))) + 1024)


class _TrainMatrix:
    """The training matrix filled chunk by chunk into one preallocated float32 array (row-major, as LightGBM reads
    it): no list of chunk arrays and no concatenated copy of them. Rows past the filled ones are never touched,
    so they are never resident."""

    def __init__(self, capacity: int, n_cols: int) -> None:
        self.data = np.empty((max(capacity, 1), n_cols), dtype=np.float32)
        self.target = np.empty(max(capacity, 1), dtype=np.float32)
        self.weight = np.empty(max(capacity, 1), dtype=np.float32)
        self.n = 0

    def _grow(self, need: int) -> None:
        cap = max(need, int(len(self.target) * 1.5))
        for name in ("data", "target", "weight"):
            old = getattr(self, name)
            new = np.empty((cap, *old.shape[1:]), dtype=np.float32)
            new[:self.n] = old[:self.n]
            setattr(self, name, new)

    def append(self, X: pd.DataFrame, target: np.ndarray, weight: np.ndarray) -> None:
        m = len(X)
        if self.n + m > len(self.target):
            self._grow(self.n + m)
        rows = slice(self.n, self.n + m)
        for j, c in enumerate(X.columns):        # column by column: no (m x n_cols) temporary
            self.data[rows, j] = X[c].to_numpy(dtype=np.float32)
        self.target[rows] = target
        self.weight[rows] = weight
        self.n += m

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views of the filled rows (contiguous: LightGBM reads them without a copy)."""
        return self.data[:self.n], self.target[:self.n], self.weight[:self.n]


@dataclass
class ForecastModel:
    cfg: ForecastConfig
    boosters: dict[float, lgb.Booster] = field(default_factory=dict)
    train_start: str | None = None
    train_end: str | None = None
    fit_seconds: float = 0.0
    n_train_rows: int = 0
    # interval calibration from the backtest (ml.calibration), applied to every prediction; None: raw quantiles
    calibration: dict | None = None

    # ---------------------------------------------------------------- training
    def fit(self, frame: pd.DataFrame, end_date=None, start_origin=None,
            weather: pd.DataFrame | None = None) -> ForecastModel:
        """Train on origins o with o + h <= end_date (only rows whose target is known by end_date). ``weather``:
        the weather forecasts as issued (ml.weather), the same source as at prediction.

        Memory is bounded: features are built in chunks of origins, kept as float32, and (if
        ``cfg.max_train_rows`` is set) each chunk is subsampled (seeded) so the training matrix never exceeds it.
        One binned LightGBM Dataset is shared by the quantile models."""
        import lightgbm as lgb
        import pandas as pd

        t0 = time.perf_counter()
        cfg = self.cfg
        if end_date is not None:
            after = pd.to_datetime(frame["date"]) > pd.Timestamp(end_date)
            if after.any():             # a copy only when there is something to drop (the final fit has not)
                frame = frame[~after.to_numpy()]
            del after
        end = pd.to_datetime(frame["date"].to_numpy()[frame["y"].notna().to_numpy()]).max()
        grid = make_grid(frame, cfg, weather)
        del frame
        train_start = str(grid.dates[0].date())
        first = pd.Timestamp(start_origin) if start_origin is not None else grid.dates[0] + pd.Timedelta(days=56)
        origins = pd.date_range(first, end - pd.Timedelta(days=1), freq=f"{cfg.origin_stride}D")
        cols = feature_columns(cfg)
        candidates = len(grid.keys) * len(cfg.horizons) * len(origins)
        frac = min(1.0, cfg.max_train_rows / max(candidates, 1)) if cfg.max_train_rows else 1.0
        # chunks of ~2M candidate rows keep the float64 feature temporaries small
        n_chunks = max(1, int(np.ceil(candidates / TRAIN_CHUNK_ROWS)))
        rng = np.random.default_rng(cfg.lgbm.seed)
        matrix = _TrainMatrix(_capacity(candidates, frac), len(cols))
        for chunk in np.array_split(np.asarray(origins), n_chunks):
            if len(chunk) == 0:
                continue
            X = build_features(grid, pd.DatetimeIndex(chunk), cfg)
            keep = (X["target_date"] <= end) & X["y"].notna() & (X["n_obs_56"] >= cfg.min_history_days)
            # with imputed stock-out days (ml.censoring) they train on the imputed demand, else they are dropped
            target_col = "y_fit" if "y_fit" in X else "y"
            if cfg.mask_stockouts and target_col == "y":
                keep &= ~X["stockout"]
            if frac < 1.0:
                keep &= rng.random(len(X)) < frac
            X = X[keep.to_numpy()]
            matrix.append(X[cols], (X[target_col] / X["scale"]).to_numpy(dtype=np.float32), self._weights(X, end))
            del X
        del grid
        data, target, weight = matrix.arrays()
        del matrix
        params = cfg.lgbm.model_dump()
        rounds = params.pop("num_boost_round")
        interval_rounds = params.pop("interval_boost_round") or rounds
        ds = lgb.Dataset(data, label=target, weight=weight, feature_name=cols,
                         categorical_feature=list(cfg.categoricals), free_raw_data=True,
                         params={"max_bin": params["max_bin"], "verbose": -1, "num_threads": params["num_threads"],
                                 "min_data_in_leaf": params["min_data_in_leaf"]})
        ds.construct()
        del data, target, weight        # the binned Dataset holds what training needs (free_raw_data)
        for q in cfg.quantiles:
            qp = dict(params, objective="quantile", alpha=q)
            n = rounds if q == 0.5 else interval_rounds
            qp["learning_rate"] = params["learning_rate"] * rounds / n
            self.boosters[q] = lgb.train(qp, ds, num_boost_round=n, keep_training_booster=False)
        self.train_start = train_start
        self.train_end = str(end.date())
        self.n_train_rows = ds.num_data()
        self.fit_seconds = time.perf_counter() - t0
        return self

    def _weights(self, X: pd.DataFrame, end) -> np.ndarray:
        """Sample weights. ``weight_by_scale``: the loss on y/scale times scale is the loss on y, so the model
        minimises absolute units (what WAPE scores) instead of relative error. ``recency_halflife_days``: recent
        targets count more (demand drifts)."""
        import pandas as pd

        cfg = self.cfg
        w = np.ones(len(X), dtype=np.float64)
        if cfg.weight_by_scale:
            w *= X["scale"].to_numpy(float)
        if cfg.recency_halflife_days:
            age = (pd.Timestamp(end) - pd.to_datetime(X["target_date"])).dt.days.to_numpy(float)
            w *= 0.5 ** (age / cfg.recency_halflife_days)
        return (w / w.mean() if len(w) else w).astype(np.float32)

    # ---------------------------------------------------------------- prediction
    def predict_features(self, X: pd.DataFrame) -> pd.DataFrame:
        cfg = self.cfg
        cols = feature_columns(cfg)
        out = X[["store_id", "item_id", "origin", "target_date", "horizon", "y"]].copy()
        data = X[cols].to_numpy(dtype=np.float32)
        preds = np.column_stack([self.boosters[q].predict(data, num_threads=cfg.lgbm.num_threads)
                                 for q in cfg.quantiles]) * X["scale"].to_numpy()[:, None]
        preds = np.sort(np.maximum(preds, 0.0), axis=1)       # non-negative, non-crossing
        names = [f"p{int(round(q * 100))}" for q in cfg.quantiles]
        for i, n in enumerate(names):
            out[n] = preds[:, i]
        out["is_fallback"] = False
        short = (X["n_obs_56"] < cfg.min_history_days).to_numpy()
        out["_short"] = short
        return out

    def predict(self, frame: pd.DataFrame, origins, horizons=None, weather: pd.DataFrame | None = None,
                fallback: bool = True) -> pd.DataFrame:
        """Forecasts for every series of ``frame`` at each origin (columns p10/p50/p90 for default quantiles).

        Many origins over many series (a backtest of a 30,000-series chain: 5.7 M rows) are predicted in chunks of
        origins of about PREDICT_CHUNK_ROWS rows, so the feature matrix stays bounded; the rows are the same, the
        chunks come one after the other. ``fallback=False``: short-history rows are flagged ``is_fallback`` but
        keep the model's values, for a caller that profiles them over more stores than ``frame`` holds."""
        import pandas as pd

        grid = make_grid(frame, self.cfg, weather)
        origins = sorted(pd.DatetimeIndex(list(origins)))
        per_origin = len(grid.keys) * len(horizons if horizons is not None else self.cfg.horizons)
        step = max(1, PREDICT_CHUNK_ROWS // max(per_origin, 1))
        src = frame if fallback else None
        if len(origins) <= step:
            return self._predict_grid(src, grid, origins, horizons)
        return pd.concat([self._predict_grid(src, grid, origins[i:i + step], horizons)
                          for i in range(0, len(origins), step)], ignore_index=True)

    def _predict_grid(self, frame: pd.DataFrame | None, grid, origins, horizons) -> pd.DataFrame:
        X = build_features(grid, origins, self.cfg, horizons)
        out = self.predict_features(X)
        del X
        if frame is None:
            out["is_fallback"] = out["_short"]
            if self.applies_calibration and len(out):
                from ml.calibration import series_groups

                groups = series_groups(grid, out)
                for k in GROUP_KEYS:
                    out[GROUP_PREFIX + k] = groups[k].to_numpy()
        elif out["_short"].any():
            fb = item_profile_fallback(frame, out.loc[out["_short"]], self.cfg)
            out.loc[out["_short"], fb.columns] = fb.to_numpy()
            out.loc[out["_short"], "is_fallback"] = True
        out = out.drop(columns="_short").reset_index(drop=True)
        return self._calibrated(out, grid)

    def _calibrated(self, out: pd.DataFrame, grid) -> pd.DataFrame:
        if not self.applies_calibration or not {"p10", "p50", "p90"} <= set(out.columns):
            return out
        from ml.calibration import apply_calibration, series_groups

        return apply_calibration(out, series_groups(grid, out), cast(dict, self.calibration))

    @property
    def applies_calibration(self) -> bool:
        """Are the forecasts' intervals calibrated? Fitted always; applied as ``cfg.apply_interval_calibration`` and
        when the backtest model had enough history to speak for this one (ml.calibration.MIN_BACKTEST_TRAIN_SHARE)."""
        from ml.calibration import why_not_applied

        return why_not_applied(self.cfg.apply_interval_calibration, self.calibration) is None

    def calibrate_fallback(self, rows: pd.DataFrame) -> pd.DataFrame:
        """``rows`` from predict(fallback=False) whose p10/p50/p90 were replaced (the fallback profiled over every
        store) with this model's interval calibration, by the groups their chunk recorded."""
        if not self.applies_calibration or not len(rows):
            return rows
        from ml.calibration import apply_calibration

        groups = rows[[GROUP_PREFIX + k for k in GROUP_KEYS]].set_axis(list(GROUP_KEYS), axis=1)
        return apply_calibration(rows, groups, cast(dict, self.calibration))

    # ---------------------------------------------------------------- persistence
    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = {"cfg": self.cfg.model_dump(), "boosters": {q: b.model_to_string() for q, b in self.boosters.items()},
                "train_start": self.train_start, "train_end": self.train_end, "calibration": self.calibration}
        path.write_bytes(pickle.dumps(blob))
        return path

    @classmethod
    def load(cls, path: Path) -> ForecastModel:
        import lightgbm as lgb

        blob = pickle.loads(Path(path).read_bytes())
        m = cls(_stored_config(blob["cfg"]))
        m.boosters = {q: lgb.Booster(model_str=s) for q, s in blob["boosters"].items()}
        expected = feature_columns(m.cfg)
        for q, b in m.boosters.items():
            if b.feature_name() != expected:
                raise ValueError(
                    f"model {path}: booster P{int(round(q * 100))} was trained on {b.num_feature()} features, "
                    f"its stored config describes {len(expected)}; retrain (the forecast_training DAG)"
                )
        m.train_start, m.train_end = blob["train_start"], blob["train_end"]
        m.calibration = blob.get("calibration")
        return m


def _stored_config(stored: dict) -> ForecastConfig:
    """The config a model was trained with. Feature options added after it was saved are absent from the
    stored dict: they take their 'off' value (empty list, False, 0), not today's default, so that an upgrade
    does not change the features an existing model is fed."""
    missing: dict[str, Any] = {}
    for name, spec in ForecastConfig.model_fields.items():
        if name in stored:
            continue
        default = spec.get_default(call_default_factory=True)
        if isinstance(default, bool):
            missing[name] = False
        elif isinstance(default, list):
            missing[name] = []
        elif isinstance(default, int):
            missing[name] = 0
    return ForecastConfig.model_validate({**stored, **missing})


def item_profile_fallback(frame: pd.DataFrame, rows: pd.DataFrame, cfg: ForecastConfig) -> pd.DataFrame:
    """Short-history forecast: the item's weekday profile over all stores (last 8 weeks before the origin, mean
    per store), scaled by the series' own level relative to the item over the days it has been observed.
    Quantiles are the item-level P10/P50/P90 of y / profile. Never errors, never zero (floor 1 unit... or 0.1)."""
    import pandas as pd

    names = [f"p{int(round(q * 100))}" for q in cfg.quantiles]
    # only the columns used here: a copy of every column of a chain's frame was 2 GB
    f = frame.loc[frame["y"].notna().to_numpy(), [c for c in ("store_id", "item_id", "date", "y", "is_stockout")
                                                  if c in frame]]
    if cfg.mask_stockouts and "is_stockout" in f:
        f = f[~f["is_stockout"].astype(bool)]
    f["date"] = pd.to_datetime(f["date"])
    f["dow"] = f["date"].dt.dayofweek
    res = np.zeros((len(rows), len(names)))
    global_mean = float(f["y"].mean()) if len(f) else 1.0
    global_mean = global_mean if np.isfinite(global_mean) and global_mean > 0 else 1.0
    # keys are (origin, item_id): origin is a Timestamp (the stubs only say Hashable)
    groups = cast(
        "Iterable[tuple[tuple[pd.Timestamp, Any], pd.DataFrame]]", rows.groupby(["origin", "item_id"], sort=False)
    )
    for (origin, item), grp in groups:
        hist = f[(f["date"] <= origin) & (f["date"] > origin - pd.Timedelta(days=56)) & (f["item_id"] == item)]
        if hist.empty:
            hist = f[(f["date"] <= origin) & (f["item_id"] == item)]
        if hist.empty:
            hist = f[f["date"] <= origin]
        if hist.empty:
            res[rows.index.get_indexer(grp.index)] = global_mean
            continue
        prof = hist.groupby("dow")["y"].mean() if len(hist) else pd.Series(dtype=float)
        level = hist["y"].mean()
        ratio = (hist["y"] / hist["dow"].map(prof)).replace([np.inf, -np.inf], np.nan).dropna()
        qs = np.nanquantile(ratio, cfg.quantiles) if len(ratio) else np.ones(len(names))
        for key, sub in grp.groupby(["store_id"], sort=False):
            own = f[(f["store_id"] == key[0]) & (f["item_id"] == item) & (f["date"] <= origin)]
            if len(own):
                same_days = hist[hist["date"].isin(own["date"])]
                ref = same_days["y"].mean() if len(same_days) else level
                s = float(own["y"].mean() / ref) if ref and np.isfinite(ref) and ref > 0 else 1.0
            else:
                s = 1.0
            dows = pd.to_datetime(sub["target_date"]).dt.dayofweek
            base = dows.map(prof).fillna(level).to_numpy() * s
            vals = base[:, None] * np.asarray(qs)[None, :]
            res[rows.index.get_indexer(sub.index)] = vals
    res = np.sort(np.maximum(np.nan_to_num(res, nan=global_mean), 0.1), axis=1)
    return pd.DataFrame(res, columns=names, index=rows.index)

"""The real German bakery-chain panel shipped in the PyPI sdist ``ddop`` (MIT licence).

``ddop-<v>/ddop/datasets/data/bakery_data.csv`` (features) and ``bakery_target.csv`` (column
``demand``, same row order): 35 stores x 3 products x 1215 days (2016-01-02 .. 2019-04-30).
The sdist is downloaded once with ``pip download`` (ddop itself is never installed) and the two CSVs
are read straight from the tar.gz. The tidy panel is cached as parquet next to it.

Note: the source ``weekday`` column is wrong by one day (2016-01-02 was a Saturday, the file says
FRI). It is kept as ``weekday_label`` because the POS prints that label, but nothing may rely on it.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd

from replenish.settings import Settings, get_settings

log = logging.getLogger(__name__)

DATA_MEMBER = "ddop-{v}/ddop/datasets/data/bakery_data.csv"
TARGET_MEMBER = "ddop-{v}/ddop/datasets/data/bakery_target.csv"

PANEL_COLUMNS = [
    "date", "store_id", "item_id", "demand", "weekday_label", "is_holiday", "is_holiday_next2days",
    "is_school_holiday", "rain", "temperature", "promotion_currentweek", "promotion_lastweek",
]


def sdist_path(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.cache_dir / f"ddop-{settings.ddop_version}.tar.gz"


def fetch_sdist(settings: Settings | None = None) -> Path:
    """Return the cached ddop sdist, downloading it with ``pip download`` if needed."""
    settings = settings or get_settings()
    path = sdist_path(settings)
    if path.exists():
        return path
    cache = settings.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    v = settings.ddop_version
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", f"ddop=={v}",
           "-d", str(cache)]
    log.info("downloading ddop==%s sdist: %s", v, " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not path.exists():
        raise RuntimeError(f"pip download of ddop=={v} failed (rc={proc.returncode}):\n{proc.stderr[-2000:]}")
    return path


def read_sdist(path: Path, version: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw (features, target) frames, read from the tar.gz without extracting it."""
    with tarfile.open(path, "r:gz") as tar:
        frames = []
        for member in (DATA_MEMBER.format(v=version), TARGET_MEMBER.format(v=version)):
            f = tar.extractfile(member)
            if f is None:
                raise RuntimeError(f"{member} missing in {path}")
            frames.append(pd.read_csv(io.BytesIO(f.read())))
    return frames[0], frames[1]


def tidy_panel(data: pd.DataFrame, target: pd.DataFrame) -> pd.DataFrame:
    """Rename/type the raw ddop frames into the panel schema (sorted by date, store, item)."""
    if len(data) != len(target):
        raise ValueError(f"bakery_data ({len(data)}) and bakery_target ({len(target)}) differ in length")
    df = pd.DataFrame({
        "date": pd.to_datetime(data["date"]).astype("datetime64[ns]"),
        "store_id": data["store"].astype("int64"),
        "item_id": data["product"].astype("int64"),
        "demand": target["demand"].astype("float64").to_numpy(),
        "weekday_label": data["weekday"].astype(str),
        "is_holiday": data["is_holiday"].astype("int64"),
        "is_holiday_next2days": data["is_holiday_next2days"].astype("int64"),
        "is_school_holiday": data["is_schoolholiday"].astype("int64"),
        "rain": data["rain"].astype("float64"),
        "temperature": data["temperature"].astype("float64"),
        "promotion_currentweek": data["promotion_currentweek"].astype("int64"),
        "promotion_lastweek": data["promotion_lastweek"].astype("int64"),
    })
    return df.sort_values(["date", "store_id", "item_id"], kind="stable").reset_index(drop=True)[PANEL_COLUMNS]


def load_panel(settings: Settings | None = None) -> pd.DataFrame:
    """The bakery panel (one row per date x store x item), cached as parquet in ``cache_dir``."""
    settings = settings or get_settings()
    cached = settings.cache_dir / f"bakery_panel_ddop-{settings.ddop_version}.parquet"
    if cached.exists():
        df = pd.read_parquet(cached)
        df["date"] = df["date"].astype("datetime64[ns]")
        return df
    data, target = read_sdist(fetch_sdist(settings), settings.ddop_version)
    df = tidy_panel(data, target)
    tmp = cached.with_suffix(".parquet.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(cached)
    return df

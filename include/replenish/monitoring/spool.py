"""A local spool for monitoring records the warehouse could not take.

The listener writes a run's record (task attempt, DAG run, failure alert) to the warehouse. When the warehouse
is unreachable even after a few reconnect attempts, the record is written to a file here instead, and every
later listener call delivers the spooled records first (oldest first) once the warehouse answers again: a run
that failed because the database went away is still recorded and alerted, once.

One JSON file per record, named so that names sort in the order they were written, written atomically
(temporary file + rename); a delivered record's file is deleted after its transaction committed. Delivering
twice is harmless (the records are upserts and the alert is claimed by its key), so a crash between the commit
and the delete only repeats an idempotent write. A record that the warehouse rejects for another reason than
being unreachable is moved to ``failed/`` (and logged), so that one bad record cannot block the others.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

_SEQ = itertools.count()


class MonitoringSettings(BaseSettings):
    """Typed settings of the listener's reconnects and spool (environment: ``REPLENISH_MONITORING_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="REPLENISH_MONITORING_", extra="ignore")

    reconnect_attempts: int = 3            # tries per record before it is spooled (at least 1)
    reconnect_delay_seconds: float = 1.0   # wait before the 2nd try, doubled before each further one
    spool_dir: Path | None = None          # default: <state>/monitoring-spool


def spool_folder(cfg: MonitoringSettings | None = None) -> Path:
    cfg = cfg or MonitoringSettings()
    if cfg.spool_dir is not None:
        return cfg.spool_dir
    from replenish.settings import get_settings

    return get_settings().state / "monitoring-spool"


def is_unreachable(exc: BaseException) -> bool:
    """A connection-level failure (the warehouse is down or gone), as opposed to SQL the warehouse rejected."""
    from sqlalchemy.exc import DBAPIError, DisconnectionError

    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, DisconnectionError | ConnectionError | TimeoutError):
            return True
        if isinstance(e, DBAPIError) and e.connection_invalidated:
            return True
        if type(e).__name__ in ("OperationalError", "InterfaceError"):
            return True
        e = e.__cause__ or e.__context__
    return False


class Spool:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def put(self, record: dict[str, Any]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(_SEQ):06d}.json"
        tmp = self.folder / f".{name}.tmp"
        tmp.write_text(json.dumps(record, default=str), encoding="utf-8")
        os.replace(tmp, self.folder / name)
        return self.folder / name

    def pending(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("*.json") if not p.name.startswith("."))

    @contextlib.contextmanager
    def _lock(self) -> Iterator[bool]:
        """One flusher at a time per spool (the scheduler and a worker may share a machine)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def flush(self, deliver: Callable[[dict[str, Any]], None]) -> int:
        """Deliver the spooled records in order; stops (raising) at the first one the warehouse cannot take."""
        if not self.pending():
            return 0
        done = 0
        with self._lock() as mine:
            if not mine:
                return 0
            for path in self.pending():
                try:
                    record = json.loads(path.read_text(encoding="utf-8"))
                except FileNotFoundError:
                    continue
                except ValueError:
                    self._set_aside(path, "not valid JSON")
                    continue
                try:
                    deliver(record)
                except Exception as exc:
                    if is_unreachable(exc):
                        raise
                    log.exception("monitoring: spooled record %s rejected, set aside", path.name)
                    self._set_aside(path, f"{type(exc).__name__}: {exc}")
                    continue
                path.unlink(missing_ok=True)
                done += 1
        if done:
            log.info("monitoring: delivered %d spooled record(s) from %s", done, self.folder)
        return done

    def _set_aside(self, path: Path, why: str) -> None:
        failed = self.folder / "failed"
        failed.mkdir(exist_ok=True)
        os.replace(path, failed / path.name)
        (failed / f"{path.name}.error").write_text(why[:4000], encoding="utf-8")

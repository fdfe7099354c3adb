"""SIGINT and SIGTERM as an exception, so an interrupted command can say what it left behind before it exits.

Without this, Ctrl-C inside an Airflow task run by ``dag.test()`` only failed that attempt (Airflow's task runner
catches every exception and schedules a retry five minutes later), and SIGTERM did nothing at all (the in-process
task runner installs a SIGTERM handler that only calls the operator's ``on_kill``, and never removes it): a container
stop or a CI timeout ended in SIGKILL, with the Airflow run left "running" and no row in ``ops.pipeline_runs``.

:class:`Interrupted` subclasses ``KeyboardInterrupt``: libraries that clean up on Ctrl-C (dbt cancels its open
queries) do so on SIGTERM too, and code that catches ``Exception`` (a dispatch counting a failed send) never takes
an interruption for an ordinary error.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived. ``details`` is filled by whoever cleaned up (the DAG run marked failed, ...)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.details: dict[str, Any] = {}

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class SignalTrap:
    """While active, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread (the same exception object
    for every signal after the first, so whoever catches it sees the first signal and what was added to it)."""

    def __init__(self) -> None:
        self.caught: Interrupted | None = None
        self._held = 0
        self._previous: dict[int, Any] = {}
        self._armed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.caught is None:
            self.caught = Interrupted(signum)
        if self._held:
            return  # recorded; the cleanup under way finishes first (a second Ctrl-C must not cut it short)
        raise self.caught

    def arm(self) -> None:
        """Install the handlers; again after a library replaced them. A signal ignored when the trap was entered
        (a background job of a non-interactive shell ignores SIGINT, ``nohup`` SIGHUP) stays ignored."""
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only; elsewhere the caller's handlers stand
        for sig in SIGNALS:
            if sig not in self._previous:
                self._previous[sig] = signal.getsignal(sig)
            if self._previous[sig] is not signal.SIG_IGN:
                signal.signal(sig, self._handle)
        self._armed = True

    def disarm(self) -> None:
        if not self._armed:
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._armed = False

    def check(self) -> None:
        """Raise the interruption caught earlier, if any (one a library swallowed, at the next point of control)."""
        if self.caught is not None and not self._held:
            raise self.caught

    @contextmanager
    def held(self) -> Iterator[None]:
        """Signals are recorded but raise nothing inside (the cleanup of an interruption runs to its end)."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1


@contextmanager
def trap_signals() -> Iterator[SignalTrap]:
    """SIGINT and SIGTERM raise :class:`Interrupted` inside; the previous handlers are back afterwards."""
    trap = SignalTrap()
    trap.arm()
    try:
        yield trap
    finally:
        trap.disarm()

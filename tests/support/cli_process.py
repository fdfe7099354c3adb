"""The ``replenish`` command in a child process, stopped by a signal as a terminal or a container stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# A terminal's foreground job receives Ctrl-C; a process a non-interactive shell starts in the background (as the
# test runner may be) inherits SIGINT ignored, which `replenish run` respects: the child is given a terminal's.
LAUNCH = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "from replenish.cli import app; app()")


def replenish(*args: str) -> list[str]:
    """The command line of ``replenish ARGS`` in this interpreter, with a terminal's Ctrl-C."""
    return [sys.executable, "-c", LAUNCH, *args]


def signalled(args: list[str], env: dict[str, str], ready: Callable[[subprocess.Popen], T], signum: int,
              timeout: float = 120) -> tuple[T, int, str]:
    """Start ``replenish ARGS``, send ``signum`` once ``ready(proc)`` returns (it waits for the moment, and raises if
    it never comes), and wait for the end: what ``ready`` returned, the exit code and stderr. Whatever is left of
    the command's process group is killed."""
    proc = subprocess.Popen(replenish(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        found = ready(proc)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return found, proc.returncode, stderr

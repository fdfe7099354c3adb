"""In-process token buckets (sign-in attempts per IP+username, API calls per key).

One process only: with several workers or hosts each keeps its own buckets, so the effective limit is
multiplied by the number of processes (a shared store such as Redis would be needed then).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; one bucket per key, created on first use."""

    def __init__(
        self, rate: float, capacity: float, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate, self.capacity, self.clock, self.max_keys = rate, capacity, clock, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> float:
        """0.0 when allowed (and the token spent), else the seconds until a token is available."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self.max_keys:  # bound memory: forget the full (idle) buckets
                self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.capacity}
            return (cost - tokens) / self.rate

    def reset(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)

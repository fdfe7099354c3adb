"""Store stock by expiry lot, vectorised over series: receive -> sell FIFO (sales = min(demand, stock)) -> expire.

``lots[:, k]`` is the stock that expires at the close of today + k. A delivery of an item with shelf life L
enters ``lots[:, L - 1]``; what is left in ``lots[:, 0]`` at the close is waste. Each day conserves units:
opening + received = sales + waste + closing (after write-off).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DayFlows:
    opening: np.ndarray      # stock after yesterday's write-off
    received: np.ndarray
    available: np.ndarray    # opening + received: what is on the shelf when the store opens
    sales: np.ndarray
    lost: np.ndarray         # demand - sales (unmet demand, lost)
    closing: np.ndarray      # at the close, before write-off (the POS snapshot: <= 0 is a stock-out)
    waste: np.ndarray
    closing_after: np.ndarray


class Inventory:
    def __init__(self, lots: np.ndarray, shelf_life: np.ndarray) -> None:
        if lots.ndim != 2 or lots.shape[0] != len(shelf_life):
            raise ValueError(f"lots: expected shape (series, life), got {lots.shape}")
        if (shelf_life < 1).any() or shelf_life.max() > lots.shape[1]:
            raise ValueError("shelf_life: every value must be in 1..lots.shape[1]")
        self.lots = lots.astype(np.int64).copy()
        self.life_idx = shelf_life.astype(np.int64) - 1
        self._cols = np.arange(len(shelf_life))

    @property
    def on_hand(self) -> np.ndarray:
        return self.lots.sum(axis=1)

    def day(self, received: np.ndarray, demand: np.ndarray) -> DayFlows:
        """One business day: morning delivery, FIFO sales capped by stock, write-off of what expires tonight."""
        received = np.asarray(received, dtype=np.int64)
        demand = np.asarray(demand, dtype=np.int64)
        if (received < 0).any() or (demand < 0).any():
            raise ValueError("received and demand must be >= 0")
        opening = self.on_hand
        self.lots[self._cols, self.life_idx] += received
        before = np.cumsum(self.lots, axis=1) - self.lots          # stock that expires earlier (sold first)
        take = np.clip(demand[:, None] - before, 0, self.lots)
        self.lots -= take
        sales = take.sum(axis=1)
        closing = self.on_hand
        waste = self.lots[:, 0].copy()
        self.lots[:, :-1] = self.lots[:, 1:]
        self.lots[:, -1] = 0
        return DayFlows(opening=opening, received=received, available=opening + received, sales=sales,
                        lost=demand - sales, closing=closing, waste=waste, closing_after=closing - waste)

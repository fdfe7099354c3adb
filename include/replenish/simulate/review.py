"""Release rules and the simulated reviewer, per simulated order (store x supplier x delivery).

The facts mirror ``orders.stages.release``: the quality gate passed and the stock snapshot is fresh (the
simulation has clean data), the supplier's ``allows_auto_order``, the order value at cost, and per line the
usual quantity (mean of the policy's own last 4 orders of the item, else the retailer's last 4 deliveries on
the same weekday, else its last 4, else 28-day mean sales x coverage days), the forecast interval width
(only for a policy that has a forecast interval; the others are not judged on it), promotions at the delivery
date, flagged (fallback) forecasts. ``orders.release.evaluate`` decides: no reason -> released touchless,
else review. The simulated reviewer then accepts the quantities as they are (``adjust`` = 1.0) or multiplies
them by ``adjust`` (rounded to whole packs, at least the MOQ).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd

from replenish.orders.release import LineFacts, OrderFacts, RuleSet, evaluate
from replenish.simulate.world import Masters

USUAL_N = 4


@dataclass
class OrderBook:
    """One policy's order history: per series, (delivery day, final qty) of its orders with qty > 0."""

    history: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def add(self, s: int, delivery: int, qty: int) -> None:
        self.history.setdefault(s, []).append((delivery, qty))


class Releaser:
    def __init__(self, masters: Masters, rules: RuleSet, adjust: float = 1.0) -> None:
        if not (adjust > 0 and np.isfinite(adjust)):
            raise ValueError(f"adjust: the reviewer's factor must be > 0, got {adjust!r}")
        self.m = masters
        self.rules = rules
        self.adjust = float(adjust)
        ho = masters.history_orders
        self._retailer: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for s, g in cast("Iterable[tuple[int, pd.DataFrame]]", ho.groupby("s")):
            per_day = g.groupby("due")["qty"].sum().sort_index().iloc[-8 * USUAL_N:]
            due = per_day.index.to_numpy(np.int64)
            self._retailer[int(s)] = (due, per_day.to_numpy(float), (masters.start.dayofweek + due) % 7)
        d = masters.drivers
        key = pd.MultiIndex.from_frame(masters.keys)
        promo = d[d["promotion"] > 0]
        self._promo = set(zip(key.get_indexer(pd.MultiIndex.from_frame(promo[["store_id", "item_id"]])).tolist(),
                              (promo["date"] - masters.start).dt.days.tolist(), strict=True))
        self._store_str = [str(x) for x in masters.keys["store_id"].tolist()]
        self._item_str = [str(x) for x in masters.keys["item_id"].tolist()]

    def usual(self, book: OrderBook, s: int, delivery: int, coverage: int, sales: np.ndarray) -> float | None:
        own = [q for d, q in book.history.get(s, []) if d < delivery][-USUAL_N:]
        if own:
            return float(np.mean(own))
        if s in self._retailer:
            due, qty, dow = self._retailer[s]
            before = due < delivery
            same = before & (dow == (self.m.start.dayofweek + delivery) % 7)
            pick = qty[same] if same.any() else qty[before]
            if len(pick):
                return float(pick[-USUAL_N:].mean())
        recent = sales[-28:, s] if len(sales) else np.zeros(0)
        return float(recent.mean()) * max(coverage, 1) if len(recent) else None

    def decide(self, lines: pd.DataFrame, book: OrderBook, sales: np.ndarray, t: int,
               adjustable: bool) -> pd.DataFrame:
        """Adds columns order_key, auto (bool), reasons (str), final_qty to the positive lines of ``lines``."""
        m, tr = self.m, self.m.terms
        lines = lines[lines["qty"] > 0].copy()
        if lines.empty:
            return lines.assign(order_key=pd.Series(dtype=object), auto=pd.Series(dtype=bool),
                                why=pd.Series(dtype=object), final_qty=pd.Series(dtype=np.int64))
        s = lines["s"].to_numpy(np.int64)
        store = m.keys["store_id"].to_numpy()[s]
        lines["order_key"] = [f"{a}|{b}|{c}" for a, b, c in zip(store, tr.supplier_id[s], lines["delivery"],
                                                                 strict=True)]
        auto = np.zeros(len(lines), bool)
        why = [""] * len(lines)
        final = lines["qty"].to_numpy(np.int64).copy()
        # plain arrays once: a per-order DataFrame slice and itertuples cost more than the rules themselves
        s_all, qty_all = s, lines["qty"].to_numpy(np.int64)
        dl_all, nx_all = lines["delivery"].to_numpy(np.int64), lines["next_delivery"].to_numpy(np.int64)
        iw_all = lines["interval_width"].to_numpy(float)
        fl_all, fb_all = lines["flagged"].to_numpy(bool), lines["fallback"].to_numpy(bool)
        rs_all = lines["reasons"].tolist()
        order_indices = cast("dict[str, np.ndarray]", lines.groupby("order_key", sort=True).indices)
        for key, idx in order_indices.items():
            facts = []
            for i in idx:
                si, dl = int(s_all[i]), int(dl_all[i])
                iw = iw_all[i]
                facts.append(LineFacts(
                    self._item_str[si], int(qty_all[i]), category=tr.category[si],
                    usual_qty=self.usual(book, si, dl, int(nx_all[i] - dl), sales),
                    interval_width=None if not np.isfinite(iw) else float(iw),
                    is_promotion=(si, dl) in self._promo, is_new_item=False,
                    forecast_flagged=bool(fl_all[i]), forecast_fallback=bool(fb_all[i])))
            s_sel = s_all[idx]
            s0 = int(s_sel[0])
            reasons = tuple(dict.fromkeys(x for i in idx for x in rs_all[i]))
            order = OrderFacts(
                order_id=key, store_id=self._store_str[s0], supplier_id=str(tr.supplier_id[s0]),
                order_value=float((qty_all[idx] * tr.cost[s_sel]).sum()),
                quality_gate_passed=True, snapshot_age_hours=0.0, allows_auto_order=bool(tr.allows_auto[s0]),
                lines=facts, proposal_reasons=reasons, snapshot_date=t, business_date=t)
            codes = evaluate(order, self.rules)
            auto[idx] = not codes
            why_s = ",".join(codes)
            for i in idx:
                why[i] = why_s
            if codes and adjustable and self.adjust != 1.0:
                q = np.rint(qty_all[idx] * self.adjust / tr.pack[s_sel]).astype(np.int64) * tr.pack[s_sel]
                q = np.where(q > 0, np.maximum(q, -((-tr.moq[s_sel]) // tr.pack[s_sel]) * tr.pack[s_sel]), 0)
                final[idx] = np.minimum(q, (tr.max_qty[s_sel] // tr.pack[s_sel]) * tr.pack[s_sel])
        lines["auto"] = auto
        lines["why"] = why
        lines["final_qty"] = final
        return lines

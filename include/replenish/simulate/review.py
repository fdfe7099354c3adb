"""Release rules and the simulated reviewer, per simulated order (store x supplier x delivery).

The facts mirror ``orders.stages.release``: the quality gate passed and the stock snapshot is fresh (the
simulation has clean data), the supplier's ``allows_auto_order``, the order value at cost, and per line the
demand distribution the proposal used (``release.LineRisk``: only for a policy that has one, ``ours``, and for
perfect foresight, whose distribution is the certain demand; the others are not judged on it), promotions at the
delivery date and flagged (fallback) forecasts. ``orders.release.decide`` decides: release touchless (with
doubtful lines capped, as the rules say) or review. The simulated reviewer then accepts the quantities as they
are (``adjust`` = 1.0) or multiplies them by ``adjust`` (rounded to whole packs, at least the MOQ).
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd

from replenish.orders.release import LineFacts, LineRisk, OrderFacts, RuleSet, decide
from replenish.simulate.world import Masters

RISK_COLUMNS = ("position", "sell_p10", "sell_p50", "sell_p90", "shelf_p10", "top_up_units")


class Releaser:
    def __init__(self, masters: Masters, rules: RuleSet, adjust: float = 1.0) -> None:
        if not (adjust > 0 and np.isfinite(adjust)):
            raise ValueError(f"adjust: the reviewer's factor must be > 0, got {adjust!r}")
        self.m = masters
        self.rules = rules
        self.adjust = float(adjust)
        d = masters.drivers
        key = pd.MultiIndex.from_frame(masters.keys)
        promo = d[d["promotion"] > 0]
        self._promo = set(zip(key.get_indexer(pd.MultiIndex.from_frame(promo[["store_id", "item_id"]])).tolist(),
                              (promo["date"] - masters.start).dt.days.tolist(), strict=True))
        self._store_ids = [int(x) for x in masters.keys["store_id"].tolist()]
        self._item_ids = [int(x) for x in masters.keys["item_id"].tolist()]

    def _risk(self, s: int, row: tuple[float, ...]) -> LineRisk | None:
        if not np.isfinite(row[1]):
            return None
        tr = self.m.terms
        return LineRisk(row[0], row[1], row[2], row[3], row[4], pack=int(tr.pack[s]), moq=int(tr.moq[s]),
                        top_up_units=int(row[5]), unit_cost=float(tr.cost[s]), unit_price=float(tr.price[s]))

    def decide(self, lines: pd.DataFrame, t: int, adjustable: bool) -> pd.DataFrame:
        """Adds columns order_key, auto (bool), why (str), final_qty to the positive lines of ``lines``."""
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
        dl_all = lines["delivery"].to_numpy(np.int64)
        risk_all = lines[list(RISK_COLUMNS)].to_numpy(float) if "sell_p50" in lines else None
        fl_all, fb_all = lines["flagged"].to_numpy(bool), lines["fallback"].to_numpy(bool)
        rs_all = lines["reasons"].tolist()
        order_indices = cast("dict[str, np.ndarray]", lines.groupby("order_key", sort=True).indices)
        for key, idx in order_indices.items():
            facts = []
            for i in idx:
                si, dl = int(s_all[i]), int(dl_all[i])
                facts.append(LineFacts(
                    int(i), int(qty_all[i]), category=tr.category[si],
                    risk=None if risk_all is None else self._risk(si, tuple(risk_all[i])),
                    is_promotion=(si, dl) in self._promo, is_new_item=False,
                    forecast_flagged=bool(fl_all[i]), forecast_fallback=bool(fb_all[i])))
            s_sel = s_all[idx]
            s0 = int(s_sel[0])
            reasons = tuple(dict.fromkeys(x for i in idx for x in rs_all[i]))
            order = OrderFacts(
                order_id=key, store_id=self._store_ids[s0], supplier_id=int(tr.supplier_id[s0]),
                order_value=float((qty_all[idx] * tr.cost[s_sel]).sum()),
                quality_gate_passed=True, snapshot_age_hours=0.0, allows_auto_order=bool(tr.allows_auto[s0]),
                lines=facts, proposal_reasons=reasons, snapshot_date=t, business_date=t)
            decision = decide(order, self.rules)
            caps = {int(c.item_id): c.to_qty for c in decision.caps}
            if caps and float(sum(caps.get(int(i), int(qty_all[i])) * tr.cost[s_all[i]] for i in idx)) < float(
                    tr.min_order_value[s0]):
                decision.reasons = ["below_min_order_value"]
                caps = {}
            auto[idx] = decision.released
            why_s = ",".join(_item_codes(decision.reasons, self._item_ids, s_all))
            for i in idx:
                why[i] = why_s
                if i in caps:
                    final[i] = caps[i]
            if decision.reasons and adjustable and self.adjust != 1.0:
                q = np.rint(qty_all[idx] * self.adjust / tr.pack[s_sel]).astype(np.int64) * tr.pack[s_sel]
                q = np.where(q > 0, np.maximum(q, -((-tr.moq[s_sel]) // tr.pack[s_sel]) * tr.pack[s_sel]), 0)
                final[idx] = np.minimum(q, (tr.max_qty[s_sel] // tr.pack[s_sel]) * tr.pack[s_sel])
        lines["auto"] = auto
        lines["why"] = why
        lines["final_qty"] = final
        return lines


def _item_codes(reasons: list[str], item_ids: list[int], s_all: np.ndarray) -> list[str]:
    """Reason codes with the line's item id (the decision names lines by their row position)."""
    out = []
    for r in reasons:
        code, _, row = r.partition(":")
        out.append(f"{code}:{item_ids[int(s_all[int(row)])]}" if row.isdigit() else r)
    return out

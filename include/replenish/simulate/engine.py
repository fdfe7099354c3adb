"""The closed loop, day by day, for every policy on the same days, demand and supplier behaviour.

Each simulated business day D, per policy: the morning's deliveries arrive -> sales = min(demand, stock), FIFO
by expiry, unmet demand is lost -> what expires tonight is written off (waste) -> after the close the policy
sees its day (``DayView``), proposes for today's order opportunities -> release rules and the simulated
reviewer -> the supplier delivers after the lead time (short on the same seeded days for every policy).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from replenish.orders.release import RuleSet, load_rules
from replenish.simulate.inventory import Inventory
from replenish.simulate.policies import DayView, Policy
from replenish.simulate.review import Releaser
from replenish.simulate.world import World

FLOWS = ("opening", "received", "available", "sales", "lost", "closing", "waste", "closing_after")
Progress = Callable[[int, int, str], None]


@dataclass
class PolicyRun:
    policy: Policy
    inventory: Inventory
    arrivals: np.ndarray
    flows: dict[str, np.ndarray]
    sales: np.ndarray
    stockout: np.ndarray
    open_orders: list[tuple[int, int, int]] = field(default_factory=list)   # (s, due, qty ordered)
    ordered: set[tuple[int, int]] = field(default_factory=set)             # (s, delivery) already ordered
    orders: list[pd.DataFrame] = field(default_factory=list)


@dataclass
class SimulationResult:
    world: World
    daily: pd.DataFrame      # policy, date, t, store_id, item_id, demand, <FLOWS>
    orders: pd.DataFrame     # policy, order_date, t, store_id, item_id, supplier_id, delivery, qty, final_qty, ...
    initial_stock: dict[str, np.ndarray]
    seconds: float
    fits: list[dict]
    rules_version: str
    adjust: float


def _received(world: World, t: int, s: np.ndarray, qty: np.ndarray, delivery: np.ndarray) -> np.ndarray:
    """Short deliveries on the same seeded (day, series) for every policy: a share of the packs is missing."""
    m = world.masters
    # build_world always draws both (the None defaults only keep the dataclass field order)
    assert m.short_u is not None and m.short_frac is not None
    pack = m.terms.pack[s]
    ok = delivery < len(m.short_u)
    d = np.where(ok, delivery, 0)
    short = ok & (m.short_u[d, s] < m.short_rate)
    return np.where(short, (np.floor(qty * m.short_frac[d, s] / pack) * pack).astype(np.int64), qty)


def simulate(world: World, policies: list[Policy], *, adjust: float = 1.0, rules: RuleSet | None = None,
             progress: Progress | None = None) -> SimulationResult:
    t0 = time.perf_counter()
    m = world.masters
    rules = rules or load_rules()
    releaser = Releaser(m, rules, adjust)
    n, S = m.n_days, m.n_series
    runs = [PolicyRun(p, Inventory(m.initial_lots, m.terms.shelf_life), m.initial_arrivals.copy(),
                      {k: np.zeros((n, S), dtype=np.int64) for k in FLOWS}, np.zeros((n, S), dtype=np.int64),
                      np.zeros((n, S), dtype=bool)) for p in policies]
    initial = {r.policy.name: m.initial_lots.sum(axis=1) for r in runs}
    for t in range(n):
        date = m.days[t]
        if progress:
            progress(t, n, f"day {date.date()}")
        for run in runs:
            f = run.inventory.day(run.arrivals[t], world.demand[t])
            for k in FLOWS:
                run.flows[k][t] = getattr(f, k)
            run.sales[t] = f.sales
            run.stockout[t] = f.closing <= 0
            run.open_orders = [o for o in run.open_orders if o[1] > t]
            oo = pd.DataFrame(run.open_orders, columns=["s", "due", "qty"]).astype(np.int64)
            opps = {s: o for s, o in m.opportunities[t].items() if (s, o.delivery) not in run.ordered}
            view = DayView(t=t, date=date, sales=run.sales[: t + 1].copy(), stockout=run.stockout[: t + 1].copy(),
                           on_hand=run.inventory.on_hand, lots=run.inventory.lots.copy(), on_order=oo,
                           opportunities=opps)
            lines = run.policy.propose(view)
            dec = releaser.decide(lines, t, run.policy.adjustable)
            dec = dec[dec["final_qty"] > 0]
            if dec.empty:
                continue
            s = dec["s"].to_numpy(np.int64)
            dl = dec["delivery"].to_numpy(np.int64)
            q = dec["final_qty"].to_numpy(np.int64)
            rec = _received(world, t, s, q, dl)
            inside = dl < len(run.arrivals)
            np.add.at(run.arrivals, (dl[inside], s[inside]), rec[inside])
            for si, di, qi in zip(s.tolist(), dl.tolist(), q.tolist(), strict=True):
                run.open_orders.append((si, di, qi))
            # an order stored for (store, supplier, delivery) is not proposed again by a later business day
            # (production upserts the same order id); all its series count as ordered for that delivery
            stored = set(dec["order_key"])
            for a, b in zip(lines["s"].astype(int), lines["delivery"].astype(int), strict=True):
                if f"{m.keys.at[a, 'store_id']}|{m.terms.supplier_id[a]}|{b}" in stored:
                    run.ordered.add((a, b))
            run.orders.append(pd.DataFrame({
                "policy": run.policy.name, "t": t, "order_date": date, "s": s,
                "supplier_id": m.terms.supplier_id[s], "delivery": dl, "order_key": dec["order_key"].to_numpy(),
                "proposed_qty": dec["qty"].to_numpy(np.int64), "final_qty": q, "received_qty": rec,
                "auto": dec["auto"].to_numpy(bool), "reasons": dec["why"].to_numpy(),
            }))
    if progress:
        progress(n, n, "done")
    keys = m.keys
    frames = []
    for run in runs:
        idx = pd.MultiIndex.from_product([range(n), range(S)], names=["t", "s"])
        ti, si = idx.get_level_values("t").to_numpy(), idx.get_level_values("s").to_numpy()
        d = pd.DataFrame({"policy": run.policy.name, "t": ti, "date": m.days[ti], "s": si,
                          "store_id": keys["store_id"].to_numpy()[si], "item_id": keys["item_id"].to_numpy()[si],
                          "demand": world.demand.ravel()})
        for k in FLOWS:
            d[k] = run.flows[k].ravel()
        frames.append(d)
    orders = pd.concat([o for r in runs for o in r.orders], ignore_index=True) if any(r.orders for r in runs) \
        else pd.DataFrame(columns=["policy", "t", "order_date", "s", "supplier_id", "delivery", "order_key",
                                   "proposed_qty", "final_qty", "received_qty", "auto", "reasons"])
    if len(orders):
        orders["store_id"] = keys["store_id"].to_numpy()[orders["s"].to_numpy(np.int64)]
        orders["item_id"] = keys["item_id"].to_numpy()[orders["s"].to_numpy(np.int64)]
        orders["delivery_date"] = m.days[0] + pd.to_timedelta(orders["delivery"].astype(np.int64), unit="D")
    fits = [f for r in runs for f in getattr(r.policy, "fits", [])]
    return SimulationResult(world=world, daily=pd.concat(frames, ignore_index=True), orders=orders,
                            initial_stock=initial, seconds=time.perf_counter() - t0, fits=fits,
                            rules_version=str(rules.version), adjust=float(adjust))

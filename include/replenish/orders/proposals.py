"""Vectorised order proposals per store x item (pure functions on DataFrames).

Units: quantities are converted once at the boundary to int64 *milli-units* (forecasts, on hand) and
money to int64 *cents*; everything after that is integer arithmetic. Order quantities are whole units
and always whole packs.

Per line (one row = store x item x supplier for one delivery):

* position  = on_hand + on_order (due before the delivery) - expiring (before the delivery)
  - expected demand (P50) between the stock snapshot and the delivery; floored at 0 (lost sales).
  Expiry: without lot data, stock is assumed at best fresh: on-hand expires before the delivery when
  ``delivery - as_of >= shelf_life_days`` (for shelf-life-1 items all on-hand always expires); an open
  order due on day d expires when ``delivery - d >= shelf_life_days``. Conservative: expiring stock is
  not assumed to be sold first.
* demand    = the quantile at the item's service level of the demand summed over the coverage window
  [delivery, next_delivery), from the days' P10/P50/P90 correlated with the model's measured day-to-day error
  correlation (quantiles.window_quantile; a sum of daily quantiles would be the P90 of five P90 days in a row).
* perishables (shelf_life_days == 1): newsvendor critical ratio cr = margin/(margin+waste_cost) with
  margin = price - cost and waste_cost = cost (= (price-cost)/price) replaces the service level and only
  the delivery day's demand is covered.
* rounding, in this fixed order: raw need (milli) -> net need (ceil to whole units) -> MOQ (raise to moq
  when need > 0) -> pack multiple (round UP; perishables: the nearest multiple of the raw need, at least one
  pack) -> cap: min(max_order_qty floored to packs, shelf-life cap = sellable demand within shelf life minus
  position rounded UP to packs). If the cap pushes a positive
  quantity below the MOQ the line becomes 0 and is flagged ``cap_below_moq``.
* supplier level (store x supplier x delivery): order value < min_order_value -> ``top_up`` (add one pack
  at a time to the line with the lowest cover ratio (position+qty)/demand among lines whose cap allows
  it, until the minimum is reached) or ``hold`` (order flagged ``below_min_order_value``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from replenish.orders.quantiles import DAY_ERROR_CORRELATION, level_weight, window_quantile, window_quantiles

MILLI = 1000
MAX_DAILY_UNITS = 1e7  # a forecast above this per store x item x day is garbage, not demand
BIG = np.int64(2**62)

REQUIRED_LINE_COLUMNS = (
    "store_id",
    "item_id",
    "supplier_id",
    "order_date",
    "delivery_date",
    "next_delivery_date",
    "as_of_date",
    "on_hand_qty",
    "pack_size",
    "moq",
    "service_level",
    "shelf_life_days",
    "unit_price",
    "unit_cost",
)


@dataclass
class ProposalResult:
    lines: pd.DataFrame
    orders: pd.DataFrame


def order_id_for(store_id, supplier_id, delivery_date) -> str:
    """Deterministic order id (<= 35 chars: usable as EDIFACT BGM number and idempotency key)."""
    d = pd.Timestamp(delivery_date).strftime("%Y%m%d")
    h = hashlib.sha1(f"{store_id}|{supplier_id}|{d}".encode()).hexdigest()[:12].upper()
    return f"PO{d}{h}"


def _days(s: pd.Series) -> np.ndarray:
    return pd.to_datetime(s).to_numpy().astype("datetime64[D]").astype("int64")


def _milli(s) -> np.ndarray:
    return np.rint(np.nan_to_num(np.asarray(s, dtype="float64")) * MILLI).astype("int64")


def _cents(s) -> np.ndarray:
    return np.rint(np.nan_to_num(np.asarray(s, dtype="float64")) * 100).astype("int64")


def _ceil_div(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    return -((-a) // b)


def _fmt_milli(v: int) -> str:
    return f"{v // MILLI}.{v % MILLI:03d}" if v >= 0 else "-" + _fmt_milli(-v)


def requested_level(price: np.ndarray, cost: np.ndarray, service_level: np.ndarray,
                    perishable: np.ndarray) -> np.ndarray:
    """The demand quantile a line orders up to: the newsvendor critical ratio margin / price for perishables (sold on
    the day or thrown away), else the service level; so 1 - level is the share of days it is meant to run out.
    Prices in any unit (the proposals pass integer cents)."""
    price, cost = np.asarray(price, dtype="float64"), np.asarray(cost, dtype="float64")
    margin = price - cost
    with np.errstate(divide="ignore", invalid="ignore"):
        cr = np.where(price > 0, margin / np.maximum(margin + cost, 1e-9), 0.0)
    return np.clip(np.where(perishable, cr, service_level), 0.01, 0.995)


def compute_proposals(
    lines: pd.DataFrame, forecasts: pd.DataFrame, *, mov_policy: str = "top_up", explain: bool = True,
    day_error_correlation: float | None = None,
) -> ProposalResult:
    """``lines``: REQUIRED_LINE_COLUMNS (+ optional on_order_qty, on_order_expiring_qty, expiring_qty,
    max_order_qty, min_order_value). ``forecasts``: store_id, item_id, target_date, p10, p50, p90
    (+ optional is_flagged). ``day_error_correlation``: of the forecast errors of a window's days, as the model's
    backtest measured it (None: quantiles.DAY_ERROR_CORRELATION). Returns line and order frames with int
    quantities and explanations."""
    if mov_policy not in ("top_up", "hold"):
        raise ValueError(f"mov_policy must be 'top_up' or 'hold', got {mov_policy!r}")
    missing = [c for c in REQUIRED_LINE_COLUMNS if c not in lines.columns]
    if missing:
        raise ValueError(f"proposal input lacks columns {missing}")
    L = lines.reset_index(drop=True)
    n = len(L)
    deliv, nextd, asof = _days(L["delivery_date"]), _days(L["next_delivery_date"]), _days(L["as_of_date"])
    shelf = np.nan_to_num(L["shelf_life_days"].to_numpy(dtype="float64"), nan=10_000).astype("int64")
    perishable = shelf == 1
    pack = np.maximum(L["pack_size"].fillna(1).to_numpy(dtype="float64"), 1).astype("int64")
    moq = np.maximum(L["moq"].fillna(0).to_numpy(dtype="float64"), 0).astype("int64")
    maxq = L["max_order_qty"].to_numpy(dtype="float64") if "max_order_qty" in L else np.full(n, np.nan)
    price_c, cost_c = _cents(L["unit_price"]), _cents(L["unit_cost"])
    on_hand = _milli(L["on_hand_qty"])
    on_order = _milli(L["on_order_qty"]) if "on_order_qty" in L else np.zeros(n, "int64")
    exp_order = _milli(L["on_order_expiring_qty"]) if "on_order_expiring_qty" in L else np.zeros(n, "int64")
    on_hand_expires = (deliv - asof) >= shelf
    expiring = np.where(on_hand_expires, on_hand, _milli(L["expiring_qty"]) if "expiring_qty" in L else 0)
    expiring = np.minimum(expiring, on_hand) + exp_order

    level = requested_level(price_c, cost_c, L["service_level"].fillna(0.95).to_numpy(dtype="float64"), perishable)
    w = level_weight(level)
    window_end = np.where(perishable, deliv + 1, nextd)
    window_days = window_end - deliv

    # forecasts -> line index (inner join on store x item)
    keys = pd.DataFrame({"store_id": L["store_id"].to_numpy(), "item_id": L["item_id"].to_numpy(), "_li": np.arange(n)})
    fcols = ["store_id", "item_id", "target_date", "p10", "p50", "p90"]
    has_flag = "is_flagged" in forecasts.columns
    F = forecasts[fcols + (["is_flagged"] if has_flag else [])].merge(keys, on=["store_id", "item_id"])
    li = F["_li"].to_numpy()
    t = _days(F["target_date"])
    p10, p50, p90 = (F[c].to_numpy(dtype="float64") for c in ("p10", "p50", "p90"))
    # a forecast no store can sell (a model fed garbage, e.g. a quantity of 1e300 that passed a blocked gate) must
    # neither overflow the integer arithmetic nor order: such days count as 0 and flag their line for a person
    absurd = ~(np.isfinite(p10) & np.isfinite(p50) & np.isfinite(p90)) | (np.maximum(p50, p90) > MAX_DAILY_UNITS)
    if absurd.any():
        p10, p50, p90 = (np.where(absurd, 0.0, a) for a in (p10, p50, p90))
    rho = DAY_ERROR_CORRELATION if day_error_correlation is None else float(day_error_correlation)
    in_cov = (t >= deliv[li]) & (t < window_end[li])
    in_sell = in_cov & (t < deliv[li] + shelf[li])
    in_shelf = (t >= deliv[li]) & (t < deliv[li] + shelf[li])
    before = (t > asof[li]) & (t < deliv[li])

    def _sum(mask, vals):
        return np.rint(np.bincount(li[mask], weights=vals[mask], minlength=n)).astype("int64")

    def _at_level(mask):
        return np.rint(window_quantile(li[mask], n, p10[mask], p50[mask], p90[mask], w, rho) * MILLI).astype("int64")

    demand = _at_level(in_cov)
    sellable = _at_level(in_sell)
    before_m = _sum(before, np.rint(np.maximum(p50, 0) * MILLI).astype("int64"))
    p50_cov = _sum(in_cov, p50 * MILLI)
    width_cov = _sum(in_cov, np.maximum(p90 - p10, 0) * MILLI)
    cov_days = np.bincount(li[in_cov], minlength=n)
    # the demand distribution the release rules judge a line by (release.LineRisk): quantiles summed over the
    # days the delivery can be sold in, and P10 over its shelf life (what is sold before it expires if demand is low)
    sell = window_quantiles(li[in_sell], n, p10[in_sell], p50[in_sell], p90[in_sell], rho)
    risk_sums = dict(zip(("sell_p10", "sell_p50", "sell_p90"), sell, strict=True))
    risk_sums["shelf_p10"] = window_quantiles(li[in_shelf], n, p10[in_shelf], p50[in_shelf], p90[in_shelf], rho)[0]
    flagged = (
        (
            np.bincount(
                li[in_cov], weights=F["is_flagged"].eq(True).to_numpy(dtype="float64")[in_cov], minlength=n
            )
            > 0
        )
        if has_flag
        else np.zeros(n, bool)
    ) | (np.bincount(li, weights=absurd.astype("float64"), minlength=n) > 0)

    position = np.maximum(on_hand + on_order - expiring - before_m, 0)
    raw_need = np.maximum(demand - position, 0)
    net_need = _ceil_div(raw_need, MILLI)
    after_moq = np.where(net_need > 0, np.maximum(net_need, moq), 0)
    # a newsvendor line's cost is flat around its quantile, so the nearest pack multiple is the cheapest (always
    # rounding up added half a pack of waste to every fresh line); at least one pack, and the MOQ, when it needs any
    nearest = ((2 * raw_need + pack * MILLI) // (2 * pack * MILLI)) * pack
    nearest = np.where(net_need > 0, np.maximum(nearest, _ceil_div(np.maximum(moq, 1), pack) * pack), 0)
    after_pack = np.where(perishable, nearest, _ceil_div(after_moq, pack) * pack)
    cap_max = np.where(np.isnan(maxq), BIG, (np.nan_to_num(maxq).astype("int64") // pack) * pack)
    shelf_limited = shelf < window_days
    cap_shelf = np.where(
        shelf_limited, _ceil_div(_ceil_div(np.maximum(sellable - position, 0), MILLI), pack) * pack, BIG
    )
    cap = np.minimum(cap_max, cap_shelf)
    after_cap = np.minimum(after_pack, cap)
    cap_below_moq = (after_cap > 0) & (after_cap < moq)
    qty = np.where(cap_below_moq, 0, after_cap)

    # supplier level: store x supplier x delivery
    okeys = pd.DataFrame(
        {"store_id": L["store_id"].to_numpy(), "supplier_id": L["supplier_id"].to_numpy(), "delivery_date": deliv}
    )
    ocode, ouniq = pd.MultiIndex.from_frame(okeys).factorize()
    n_orders = len(ouniq)
    mov_c = _cents(L["min_order_value"]) if "min_order_value" in L else np.zeros(n, "int64")
    mov_order = np.zeros(n_orders, "int64")
    np.maximum.at(mov_order, ocode, mov_c)
    top_up_packs = np.zeros(n, "int64")
    value = np.bincount(ocode, weights=qty * cost_c, minlength=n_orders).astype("int64")
    below = (value > 0) & (value < mov_order)
    if mov_policy == "top_up" and below.any():
        qty, top_up_packs = _top_up(qty, pack, cap, cost_c, position, demand, ocode, mov_order, value)
        value = np.bincount(ocode, weights=qty * cost_c, minlength=n_orders).astype("int64")
    still_below = (value > 0) & (value < mov_order)

    out = pd.DataFrame(
        {
            "store_id": L["store_id"].to_numpy(),
            "item_id": L["item_id"].to_numpy(),
            "supplier_id": L["supplier_id"].to_numpy(),
            "delivery_date": L["delivery_date"].to_numpy(),
            "order_idx": ocode,
            "proposed_qty": qty,
            "quantile_level": np.round(level, 4),
            "demand_milli": demand,
            "position_milli": position,
            "interval_width": np.where(p50_cov > 0, width_cov / np.maximum(p50_cov, 1), np.inf),
            "forecast_flagged": flagged,
            "forecast_incomplete": cov_days < window_days,
            "cap_below_moq": cap_below_moq,
            "is_perishable": perishable,
            "line_value_cents": qty * cost_c,
            "unit_cost": cost_c / 100,
            "unit_price": price_c / 100,
            **{k: np.round(v, 3) for k, v in risk_sums.items()},
        }
    )
    first = pd.Series(np.arange(n)).groupby(ocode).first().to_numpy()
    orders = pd.DataFrame(
        {
            "store_id": L["store_id"].to_numpy()[first],
            "supplier_id": L["supplier_id"].to_numpy()[first],
            "order_date": L["order_date"].to_numpy()[first],
            "delivery_date": L["delivery_date"].to_numpy()[first],
            "next_delivery_date": L["next_delivery_date"].to_numpy()[first],
            "order_value_cents": value,
            "min_order_value_cents": mov_order,
            "mov_status": np.where(still_below, "hold", np.where(below, "topped_up", "ok")),
        }
    )
    orders["order_id"] = [
        order_id_for(s, p, d)
        for s, p, d in zip(orders["store_id"], orders["supplier_id"], orders["delivery_date"], strict=True)
    ]
    out["order_id"] = orders["order_id"].to_numpy()[ocode]
    orders["reasons"] = [["below_min_order_value"] if h else [] for h in still_below]
    for name, arr in (
        ("on_hand_milli", on_hand),
        ("on_order_milli", on_order),
        ("expiring_milli", expiring),
        ("before_milli", before_m),
        ("raw_need_milli", raw_need),
        ("net_need", net_need),
        ("moq", moq),
        ("after_moq", after_moq),
        ("pack_size", pack),
        ("after_pack", after_pack),
        ("cap", cap),
        ("after_cap", after_cap),
        ("top_up_packs", top_up_packs),
        ("coverage_days", window_days),
    ):
        out[name] = arr
    if explain:
        out["explanation"] = render_explanations(out)
    return ProposalResult(out, orders)


def _top_up(qty, pack, cap, cost_c, position, demand, ocode, mov_order, value, max_rounds: int = 10_000):
    """Greedy, vectorised over orders: each round adds one pack to the lowest-cover eligible line of every
    order still below its minimum order value. Perishables are never topped up."""
    qty = qty.copy()
    added = np.zeros_like(qty)
    value = value.copy()
    idx_all = np.flatnonzero(np.isin(ocode, np.flatnonzero((value > 0) & (value < mov_order))))
    for _ in range(max_rounds):
        open_orders = (value > 0) & (value < mov_order)
        idx = idx_all[open_orders[ocode[idx_all]]]
        idx = idx[(qty[idx] + pack[idx] <= cap[idx]) & (cost_c[idx] > 0)]
        if idx.size == 0:
            break
        # lowest cover ratio first (integer cross-multiplication avoided: float only for ranking)
        cover = (position[idx] + qty[idx] * MILLI) / np.maximum(demand[idx], 1)
        order = np.lexsort((cover, ocode[idx]))
        idx = idx[order]
        firsts = idx[np.r_[True, ocode[idx][1:] != ocode[idx][:-1]]]
        qty[firsts] += pack[firsts]
        added[firsts] += 1
        np.add.at(value, ocode[firsts], pack[firsts] * cost_c[firsts])
    return qty, added


_TEMPLATE = (
    '{"quantile_level": %s, "quantile": "P%s", "rule": "%s", "forecast_quantile_sum": %.3f, '
    '"coverage_days": %d, "on_hand": %.3f, "on_order": %.3f, "expiring": %.3f, "demand_before_delivery": %.3f, '
    '"position": %.3f, "raw_need": %.3f, "steps": {"net_need": %d, "moq": [%d, %d], "pack": [%d, %d], '
    '"cap": [%s, %d], "cap_below_moq": %s, "top_up_packs": %d}, "final": %d, "interval_width": %s, '
    '"risk": {"sell_p10": %.3f, "sell_p50": %.3f, "sell_p90": %.3f, "shelf_p10": %.3f, "unit_cost": %.2f, '
    '"unit_price": %.2f}, '
    '"why": "why %d: P%s demand %.3f over %d day(s) minus position %.3f (on hand %.3f + on order %.3f - expiring '
    '%.3f - sold before delivery %.3f) = need %d; MOQ %d -> %d; pack %d -> %d; cap %s -> %d%s%s"}'
)
_MILLI_COLUMNS = ("demand_milli", "on_hand_milli", "on_order_milli", "expiring_milli", "before_milli",
                  "position_milli", "raw_need_milli")
_INT_COLUMNS = ("coverage_days", "net_need", "moq", "after_moq", "pack_size", "after_pack", "after_cap",
                "top_up_packs", "proposed_qty")
_RISK_COLUMNS = ("sell_p10", "sell_p50", "sell_p90", "shelf_p10", "unit_cost", "unit_price")


def render_explanations(df: pd.DataFrame) -> list[str]:
    """Explanation JSON per line from the numeric columns of compute_proposals(), rendered with a single
    %-template per row (json.dumps per row is too slow for 1M lines). Every value is numeric or a fixed token,
    so no escaping is needed."""
    level = df["quantile_level"].to_numpy(dtype="float64")
    milli = {c: (df[c].to_numpy() / MILLI).tolist() for c in _MILLI_COLUMNS}
    ints = {c: df[c].to_numpy().tolist() for c in _INT_COLUMNS}
    risk = {c: (df[c].to_numpy(dtype="float64") if c in df else np.zeros(len(df))).tolist() for c in _RISK_COLUMNS}
    pct = [f"{v:g}" for v in np.round(level * 100, 1).tolist()]
    lv = np.round(level, 4).tolist()
    caps = np.where(df["cap"].to_numpy() >= BIG // 2, -1, df["cap"].to_numpy()).tolist()
    rule = np.where(df["is_perishable"].to_numpy(), "newsvendor", "service_level").tolist()
    iw = np.round(df["interval_width"].to_numpy(dtype="float64"), 4).tolist()
    below = df["cap_below_moq"].to_numpy().tolist()
    res = []
    for i in range(len(df)):
        m = {c: v[i] for c, v in milli.items()}
        k = {c: v[i] for c, v in ints.items()}
        cp = "null" if caps[i] < 0 else str(caps[i])
        q, p, tu = k["proposed_qty"], pct[i], k["top_up_packs"]
        res.append(_TEMPLATE % (
            lv[i], p, rule[i], m["demand_milli"], k["coverage_days"], m["on_hand_milli"], m["on_order_milli"],
            m["expiring_milli"], m["before_milli"], m["position_milli"], m["raw_need_milli"], k["net_need"],
            k["moq"], k["after_moq"], k["pack_size"], k["after_pack"], cp, k["after_cap"],
            "true" if below[i] else "false", tu, q, "null" if not np.isfinite(iw[i]) else repr(iw[i]),
            *(risk[c][i] for c in _RISK_COLUMNS),
            q, p, m["demand_milli"], k["coverage_days"], m["position_milli"], m["on_hand_milli"],
            m["on_order_milli"], m["expiring_milli"], m["before_milli"], k["net_need"], k["moq"], k["after_moq"],
            k["pack_size"], k["after_pack"], "none" if caps[i] < 0 else cp, k["after_cap"],
            "; below MOQ after cap -> 0" if below[i] else "",
            f"; +{tu} pack(s) to reach minimum order value" if tu else "",
        ))
    return res


"""A synthetic retail chain of any size (default 200 stores x 150 items x 2 years), for the pipeline benchmark.

Seeded and deterministic. It produces a :class:`~replenish.data.retailer.Retailer`, so
:func:`replenish.data.exports.write_exports` writes it under the same export contract as the bakery
retailer. The bakery generator replays real demand series by series (fine for 3 items x 5 stores); this one
is vectorised over all series with one loop over the days, so 30,000 series stay cheap:

* items are copies of the bakery's three archetypes (rolls, bread, pretzels: shelf life, pack, supplier
  terms), with their own price and demand level; stores get a size factor and one of five regions;
* demand = Poisson(level x weekday profile x season x promotion uplift x holiday factor);
* stock: every delivery day an order-up-to level (next days' expected demand plus a safety margin) placed
  ``lead_time_days`` before, received in full; sales are capped by stock; fresh items are written off at
  closing, longer-life items lose a small share. Purchase orders and goods receipts follow from that.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import numpy as np
import pandas as pd

from replenish.data.retailer import ITEM_SUPPLIERS, ITEMS, LABELS, SAFETY, SUPPLIERS, Retailer

REGIONS = ["BW", "BY", "HE", "RP", "NW"]
WEATHER_HORIZON = 14
# Weekday demand profile per archetype (Mon..Sun): rolls peak at weekends, bread on Fri/Sat.
PROFILE = {101: [0.9, 0.85, 0.9, 0.95, 1.1, 1.35, 0.95], 109: [0.9, 0.9, 0.95, 1.0, 1.2, 1.25, 0.8],
           110: [1.0, 0.95, 1.0, 1.0, 1.1, 1.15, 0.8]}
HOLIDAYS_MD = [(1, 1), (1, 6), (5, 1), (10, 3), (11, 1), (12, 25), (12, 26)]


def _holidays(dates: pd.DatetimeIndex) -> np.ndarray:
    md = set(HOLIDAYS_MD)
    return np.array([(d.month, d.day) in md for d in dates])


def _school_holidays(dates: pd.DatetimeIndex, region: int) -> np.ndarray:
    # Summer (shifted a week per region), Christmas and two weeks around Easter-ish.
    doy = dates.dayofyear.to_numpy()
    summer = (doy >= 205 + 7 * region) & (doy < 247 + 7 * region)
    winter = (doy >= 356) | (doy <= 6)
    spring = (doy >= 95 + 3 * region) & (doy < 109 + 3 * region)
    return summer | winter | spring


def _chain_items(n_items: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Items as copies of the bakery archetypes with their own price: (items, their supplier terms in the same
    order, the archetype of each item)."""
    arche = ITEMS.set_index("item_id")
    arche_ids = np.array(sorted(arche.index))
    item_arch = arche_ids[np.arange(n_items) % len(arche_ids)]
    item_ids = 1000 + np.arange(n_items)
    price_f = rng.uniform(0.7, 1.6, n_items)
    items_df = pd.DataFrame({
        "item_id": item_ids,
        "item_name": [f"{arche.loc[a, 'item_name']} {i}" for i, a in zip(item_ids, item_arch, strict=True)],
        "category": arche.loc[item_arch, "category"].to_numpy(),
        "shelf_life_days": arche.loc[item_arch, "shelf_life_days"].to_numpy(),
        "unit_price": np.round(arche.loc[item_arch, "unit_price"].to_numpy() * price_f, 2),
        "unit_cost": np.round(arche.loc[item_arch, "unit_cost"].to_numpy() * price_f, 2),
        "is_active": True,
    })
    terms = ITEM_SUPPLIERS.set_index("item_id").loc[item_arch].reset_index(drop=True)
    item_suppliers = terms.assign(item_id=item_ids)[list(ITEM_SUPPLIERS.columns)]
    return items_df, item_suppliers, item_arch


def _chain_stores(stores: int, dates: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DataFrame:
    store_ids = 1 + np.arange(stores)
    store_region = rng.integers(0, len(REGIONS), stores)
    return pd.DataFrame({
        "store_id": store_ids, "store_name": [f"Filiale {s:03d}" for s in store_ids],
        "city": [f"Stadt {s % 97:02d}" for s in store_ids], "region": [REGIONS[r] for r in store_region],
        "opened_date": [(dates[0] - pd.Timedelta(days=int(d))).date() for d in rng.integers(200, 5000, stores)],
        "is_active": True,
    })


def _chain_calendar(dates: pd.DatetimeIndex) -> pd.DataFrame:
    # 28 days past the history, like the bakery retailer: the D+28 look-ahead is complete
    cal_dates = pd.date_range(dates[0], dates[-1] + pd.Timedelta(days=28))
    hol = _holidays(cal_dates)
    calendar = pd.concat([pd.DataFrame({
        "calendar_date": cal_dates, "region": REGIONS[r],
        "weekday": [LABELS[d] for d in cal_dates.dayofweek],
        "is_public_holiday": hol, "is_school_holiday": _school_holidays(cal_dates, r),
    }) for r in range(len(REGIONS))], ignore_index=True).sort_values(["calendar_date", "region"])
    return calendar.reset_index(drop=True)


def _chain_weather(dates: pd.DatetimeIndex, store_ids: np.ndarray,
                   rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weather actuals (seasonal temperature, showers) and forecasts whose error grows with the lead time."""
    T, stores = len(dates), len(store_ids)
    doy = dates.dayofyear.to_numpy()
    temp = (11 + 9 * np.sin(2 * np.pi * (doy - 110) / 365.25))[:, None] + rng.normal(0, 2.5, (T, stores))
    rain = np.round(np.where(rng.random((T, stores)) < 0.35, rng.gamma(1.2, 3.0, (T, stores)), 0.0), 1)
    temp = np.round(temp, 1)
    weather = pd.DataFrame({"store_id": np.tile(store_ids, T), "weather_date": np.repeat(dates, stores),
                            "rain_mm": rain.ravel(), "temperature_c": temp.ravel()})
    fc = []
    for h in range(1, WEATHER_HORIZON + 1):
        issue = np.arange(T - h)
        fc.append(pd.DataFrame({
            "issue_date": np.repeat(dates[issue], stores), "store_id": np.tile(store_ids, len(issue)),
            "weather_date": np.repeat(dates[issue + h], stores),
            "rain_mm": np.round(np.clip(rain[issue + h] + rng.normal(0, 0.2 + 0.1 * h, (len(issue), stores)), 0,
                                        None), 1).ravel(),
            "temperature_c": np.round(temp[issue + h] + rng.normal(0, 0.6 + 0.25 * h, (len(issue), stores)),
                                      1).ravel(),
        }))
    forecasts = pd.concat(fc, ignore_index=True).sort_values(["issue_date", "store_id", "weather_date"])
    return weather, forecasts.reset_index(drop=True)


def _chain_promotions(dates: pd.DatetimeIndex, s_store: np.ndarray, s_item: np.ndarray,
                      rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
    """One-week promotions, ~4 per series per year: (promotion flag per day x series, promotions)."""
    T, S = len(dates), len(s_store)
    n_promo = max(1, T // 90)
    starts = rng.integers(0, T - 7, (S, n_promo))
    promo = np.zeros((T, S), dtype=bool)
    for k in range(n_promo):
        for d in range(7):
            promo[np.minimum(starts[:, k] + d, T - 1), np.arange(S)] = True
    p_s = np.repeat(np.arange(S), n_promo)
    p_start = dates[starts.ravel()]
    promotions = pd.DataFrame({
        "promotion_id": [f"PR-{a}-{b}-{c:%Y%m%d}" for a, b, c in zip(s_store[p_s], s_item[p_s], p_start,
                                                                      strict=True)],
        "store_id": s_store[p_s], "item_id": s_item[p_s], "start_date": p_start,
        "end_date": p_start + pd.Timedelta(days=6), "promo_type": "weekly_flyer",
    }).drop_duplicates(["store_id", "item_id", "start_date"]).reset_index(drop=True)
    return promo, promotions


def _replay_stock(dates: pd.DatetimeIndex, demand: np.ndarray, plan: np.ndarray, level: np.ndarray,
                  item_idx: np.ndarray, terms: pd.DataFrame, items_df: pd.DataFrame,
                  arch_s: np.ndarray) -> dict[str, np.ndarray]:
    """Stock movements per day x series: order-up-to deliveries on delivery days, sales capped by stock, write-off."""
    T, S = demand.shape
    n_items = len(terms)
    lead = terms["lead_time_days"].to_numpy()[item_idx]
    pack = terms["pack_size"].to_numpy()[item_idx]
    life = items_df["shelf_life_days"].to_numpy()[item_idx]
    safety = np.array([SAFETY[a] for a in arch_s])
    wds = [set(int(w) for w in s.split("|")) for s in terms["order_weekdays"]]
    order_day = np.array([[(d + 1) in wds[i] for d in range(7)] for i in range(n_items)])[item_idx]  # (S, 7)
    cover = np.ones(S, dtype=np.int64)
    for i in range(n_items):                                                      # days until the next delivery
        days_on = np.flatnonzero(order_day[i])
        gaps = np.diff(np.r_[days_on, days_on[0] + 7])
        cover[item_idx == i] = int(gaps.max())
    keys = ("opening", "received", "sales", "closing", "waste", "closing_after")
    out = {k: np.zeros((T, S), dtype=np.int32) for k in keys}                    # int32: half the memory
    on_hand = np.round(level * 1.2).astype(np.int64)
    for t in range(T):
        o = t - lead                                                              # order day of today's delivery
        deliver = order_day[np.arange(S), dates[np.clip(o, 0, T - 1)].dayofweek.to_numpy()] & (o >= -7)
        need = np.zeros(S)
        for c in range(int(cover.max())):
            need += np.where(c < cover, plan[min(t + c, T - 1)], 0.0)
        target = np.ceil(need * (1 + safety))
        qty = np.where(deliver, np.ceil(np.maximum(target - on_hand, 0) / pack) * pack, 0).astype(np.int64)
        avail = on_hand + qty
        sales = np.minimum(demand[t], avail)
        left = avail - sales
        waste = np.where(life <= 1, left, np.floor(left * 0.08).astype(np.int64))
        out["opening"][t], out["received"][t], out["sales"][t] = on_hand, qty, sales
        out["closing"][t], out["waste"][t] = left, waste
        on_hand = left - waste
        out["closing_after"][t] = on_hand
    return out


def _chain_daily(dates: pd.DatetimeIndex, s_store: np.ndarray, s_item: np.ndarray, demand: np.ndarray,
                 out: dict[str, np.ndarray]) -> pd.DataFrame:
    T, S = demand.shape
    dow = dates.dayofweek.to_numpy()
    ti = np.repeat(np.arange(T), S)
    si = np.tile(np.arange(S), T)
    # The weekday label as a categorical: 7 strings, not one Python string per row (22 M rows at full size).
    daily = pd.DataFrame({"date": dates[ti], "store_id": s_store[si], "item_id": s_item[si],
                          # pandas-stubs want codes: Sequence[int], categories: Index (pandas takes arrays/lists)
                          "weekday_label": pd.Categorical.from_codes(dow[ti], LABELS),  # type: ignore[arg-type]
                          "demand": demand.astype(np.int32).ravel()})
    del ti, si
    for col, values in out.items():
        daily[col] = values.ravel()
    return daily


def _chain_orders(dates: pd.DatetimeIndex, s_store: np.ndarray, s_item: np.ndarray, received: np.ndarray,
                  lead: np.ndarray, supplier: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Purchase orders and goods receipts behind the deliveries (every delivery was ordered and received in full)."""
    rt, rs = np.nonzero(received > 0)
    po = pd.DataFrame({
        "store_id": s_store[rs], "supplier_id": supplier[rs], "item_id": s_item[rs],
        "order_date": dates[rt] - pd.to_timedelta(lead[rs], unit="D"), "due_date": dates[rt],
        "quantity": received[rt, rs], "received_qty": received[rt, rs],
    }).sort_values(["order_date", "store_id", "supplier_id", "item_id"]).reset_index(drop=True)
    # Ids as Arrow strings (built vectorised, a few bytes a row): 18 M purchase-order lines at full size would need
    # gigabytes as Python strings.
    text: Literal["string[pyarrow]"] = "string[pyarrow]"
    ymd = po["order_date"].dt.year * 10000 + po["order_date"].dt.month * 100 + po["order_date"].dt.day
    po["po_id"] = ("PO-" + po["store_id"].astype(text) + "-" + po["supplier_id"].astype(text) + "-"
                   + ymd.astype(text))
    po["line_no"] = po.groupby("po_id").cumcount() + 1
    po = po[["po_id", "line_no", "store_id", "supplier_id", "item_id", "order_date", "due_date", "quantity",
             "received_qty"]]
    gr = po.assign(received_date=po["due_date"], receipt_no="GR-" + po["po_id"].str[3:] + "-"
                   + po["line_no"].astype(text), quantity=po["received_qty"])
    gr = gr[["receipt_no", "po_id", "line_no", "store_id", "item_id", "received_date", "quantity"]]
    return po, gr


def generate_chain(stores: int = 200, items: int = 150, days: int = 730, end: dt.date = dt.date(2019, 4, 29),
                   seed: int = 20260101) -> Retailer:
    """The chain's masters, calendar, weather, promotions and operational history for ``days`` days to ``end``."""
    if stores < 1 or items < 1 or days < 60:
        raise ValueError(f"need stores >= 1, items >= 1 and days >= 60 (got {stores}, {items}, {days})")
    # One generator shared by the parts below: the order of the calls is the order of the draws, so it is part of
    # what a seed produces.
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end=pd.Timestamp(end), periods=days, freq="D")
    T, n_items = len(dates), items
    items_df, terms, item_arch = _chain_items(n_items, rng)
    stores_df = _chain_stores(stores, dates, rng)
    store_ids = stores_df["store_id"].to_numpy()
    calendar = _chain_calendar(dates)
    weather, forecasts = _chain_weather(dates, store_ids, rng)

    S = stores * n_items
    s_store = np.repeat(store_ids, n_items)
    s_item = np.tile(items_df["item_id"].to_numpy(), stores)
    promo, promotions = _chain_promotions(dates, s_store, s_item, rng)

    # demand = Poisson(level x weekday profile x season x promotion uplift x holiday factor)
    item_idx = np.tile(np.arange(n_items), stores)
    arch_s = item_arch[item_idx]
    level = rng.gamma(2.0, 6.0, n_items)[item_idx] * rng.uniform(0.5, 1.8, stores)[np.repeat(np.arange(stores),
                                                                                              n_items)]
    prof = np.array([PROFILE[a] for a in arch_s]).T                              # (7, S)
    dow = dates.dayofweek.to_numpy()
    doy = dates.dayofyear.to_numpy()
    season = 1 + 0.12 * np.sin(2 * np.pi * (doy - 80) / 365.25)
    holiday_f = np.where(_holidays(dates), 0.35, 1.0)
    mean = level[None, :] * prof[dow] * (season * holiday_f)[:, None] * np.where(promo, 1.4, 1.0)
    demand = rng.poisson(mean).astype(np.int64)
    del mean, promo
    plan = level[None, :] * prof[dow] * season[:, None]                          # expected demand, no promo info
    out = _replay_stock(dates, demand, plan, level, item_idx, terms, items_df, arch_s)
    del plan

    daily = _chain_daily(dates, s_store, s_item, demand, out)
    po, gr = _chain_orders(dates, s_store, s_item, out["received"], terms["lead_time_days"].to_numpy()[item_idx],
                           terms["supplier_id"].to_numpy()[item_idx])
    stats = {"series": S, "days": T, "stores": stores, "items": n_items, "daily_rows": int(len(daily)),
             "purchase_order_lines": int(len(po)),
             "lost_sales_share": float((demand - out["sales"]).sum() / max(demand.sum(), 1)),
             "waste_share_of_received": float(out["waste"].sum() / max(out["received"].sum(), 1))}
    return Retailer(seed=seed, dates=dates, stores=stores_df, items=items_df, suppliers=SUPPLIERS.copy(),
                    item_suppliers=terms, calendar=calendar, weather=weather, weather_forecasts=forecasts,
                    promotions=promotions, daily=daily, purchase_orders=po, goods_receipts=gr, stats=stats)


def _window(r: Retailer, start: pd.Timestamp, end: pd.Timestamp) -> Retailer:
    """The part of ``r`` that the export days ``start..end`` read (see exports._day_files): rendering a whole
    large chain at once needs memory in proportion to its size, a window of days does not."""
    import dataclasses

    from replenish.data.exports import CAL_AHEAD, CAL_BACK, PROMO_AHEAD, PROMO_BACK

    def between(s: pd.Series, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.Series:
        return (s >= lo) & (s <= hi)

    day = pd.Timedelta(days=1)
    po = r.purchase_orders
    max_lead = int((po["due_date"] - po["order_date"]).dt.days.max()) if len(po) else 0
    wf = r.weather_forecasts
    return dataclasses.replace(
        r,
        dates=r.dates[(r.dates >= start) & (r.dates <= end)],
        calendar=r.calendar[between(r.calendar["calendar_date"], start - CAL_BACK * day, end + CAL_AHEAD * day)],
        weather=r.weather[between(r.weather["weather_date"], start, end)],
        weather_forecasts=wf[between(wf["issue_date"], start, end)],
        promotions=r.promotions[(r.promotions["start_date"] <= end + PROMO_AHEAD * day)
                                & (r.promotions["end_date"] >= start - PROMO_BACK * day)],
        daily=r.daily[between(r.daily["date"], start, end)],
        purchase_orders=po[between(po["order_date"], start - max_lead * day, end)],
        goods_receipts=r.goods_receipts[between(r.goods_receipts["received_date"], start, end)],
    )


def write_chain_exports(r: Retailer, root, window_days: int = 61) -> dict:
    """:func:`replenish.data.exports.write_exports` for a large chain, a window of days at a time."""
    from replenish.data.exports import write_exports

    rows: dict[str, int] = {}
    written = 0
    for i in range(0, len(r.dates), window_days):
        days = r.dates[i:i + window_days]
        res = write_exports(_window(r, days[0], days[-1]), root)
        written += res["days_written"]
        for name, n in res["rows"].items():
            rows[name] = rows.get(name, 0) + n
    return {"root": str(root), "first_date": r.dates[0].date().isoformat(),
            "last_date": r.dates[-1].date().isoformat(), "days_total": len(r.dates), "days_written": written,
            "rows": rows}

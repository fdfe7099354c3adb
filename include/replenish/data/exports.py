"""Write the retailer's daily POS/MMS exports exactly per docs/file-contract.md.

One folder per business day ``<root>/<YYYY-MM-DD>/<system>/<entity>.csv``; each day is written to a
hidden temp folder and renamed into place (atomic), days already complete are skipped unless
``force=True``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from replenish.data.retailer import Retailer
from replenish.settings import Settings, get_settings

# contract column order per file (docs/file-contract.md)
COLUMNS: dict[str, list[str]] = {
    "pos/sales_lines.csv": ["receipt_id", "store_id", "item_id", "sold_at", "quantity", "unit_price", "amount",
                            "weekday"],
    "pos/stock_levels.csv": ["store_id", "item_id", "snapshot_at", "on_hand_qty"],
    "pos/waste_lines.csv": ["store_id", "item_id", "waste_date", "quantity", "reason"],
    "mms/stores.csv": ["store_id", "store_name", "city", "region", "opened_date", "is_active"],
    "mms/items.csv": ["item_id", "item_name", "category", "shelf_life_days", "unit_price", "unit_cost", "is_active"],
    "mms/suppliers.csv": ["supplier_id", "supplier_name", "channel", "email", "api_url", "allows_auto_order"],
    "mms/item_suppliers.csv": ["item_id", "supplier_id", "pack_size", "moq", "min_order_value", "lead_time_days",
                               "order_weekdays", "cutoff_time", "max_order_qty", "service_level"],
    "mms/purchase_orders.csv": ["po_id", "line_no", "store_id", "supplier_id", "item_id", "order_date", "due_date",
                                "quantity", "status"],
    "mms/goods_receipts.csv": ["receipt_no", "po_id", "line_no", "store_id", "item_id", "received_date", "quantity"],
    "mms/promotions.csv": ["promotion_id", "store_id", "item_id", "start_date", "end_date", "promo_type"],
    "mms/calendar.csv": ["calendar_date", "region", "weekday", "is_public_holiday", "is_school_holiday"],
    "mms/weather.csv": ["store_id", "weather_date", "rain_mm", "temperature_c", "is_forecast"],
}
FILES = tuple(COLUMNS)
SALE_TIME = dt.time(20, 0)      # one aggregated receipt per store x item x day, at closing time
SNAPSHOT_TIME = dt.time(20, 30)  # closing stock snapshot, before the write-off
CAL_BACK, CAL_AHEAD = 7, 28
PROMO_BACK, PROMO_AHEAD = 7, 28

Progress = Callable[[int, int], None]


@dataclass
class ExportSummary:
    root: str
    first_date: str | None
    last_date: str | None
    days_total: int
    days_written: int
    days_skipped: int
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _iso_date(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s).dt.strftime("%Y-%m-%d")


def _bool(s: pd.Series) -> pd.Series:
    return s.map({True: "true", False: "false"}).astype(object)


def _offsets(dates: pd.DatetimeIndex, at: dt.time, tz: str) -> dict[pd.Timestamp, str]:
    zone = ZoneInfo(tz)
    out = {}
    for d in dates:
        local = dt.datetime.combine(d.date(), at, tzinfo=zone)
        out[d] = local.isoformat()
    return out


def _csv(df: pd.DataFrame, cols: list[str]) -> str:
    return df[cols].to_csv(index=False, lineterminator="\n")


def _header(cols: list[str]) -> str:
    return ",".join(cols) + "\n"


def _by_date(df: pd.DataFrame, col: str, cols: list[str]) -> dict[pd.Timestamp, str]:
    """Render the whole table once, then cut the text into one CSV body per date."""
    if not len(df):
        return {}
    df = df.sort_values(col, kind="stable")
    lines = np.array(df[cols].to_csv(index=False, header=False, lineterminator="\n").split("\n")[:-1], dtype=object)
    keys = df[col].to_numpy()
    bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    pairs = zip(bounds[:-1], bounds[1:], strict=True)
    return {pd.Timestamp(keys[a]): "".join(x + "\n" for x in lines[a:b]) for a, b in pairs}


def _prepare(r: Retailer, tz: str) -> dict:
    """Everything that does not depend on the day, rendered once."""
    items = r.items.set_index("item_id")
    daily = r.daily
    prep: dict = {}
    st = r.stores.assign(opened_date=_iso_date(r.stores["opened_date"]), is_active=_bool(r.stores["is_active"]))
    it = r.items.assign(is_active=_bool(r.items["is_active"]))
    su = r.suppliers.assign(allows_auto_order=_bool(r.suppliers["allows_auto_order"]))
    prep["masters"] = {
        "mms/stores.csv": _csv(st, COLUMNS["mms/stores.csv"]),
        "mms/items.csv": _csv(it, COLUMNS["mms/items.csv"]),
        "mms/suppliers.csv": _csv(su, COLUMNS["mms/suppliers.csv"]),
        "mms/item_suppliers.csv": _csv(r.item_suppliers, COLUMNS["mms/item_suppliers.csv"]),
    }
    sold_at = _offsets(r.dates, SALE_TIME, tz)
    snap_at = _offsets(r.dates, SNAPSHOT_TIME, tz)
    s = daily[daily["sales"] > 0]
    price = s["item_id"].map(items["unit_price"])
    sales = pd.DataFrame({
        "date": s["date"],
        "receipt_id": "Z-" + s["store_id"].astype(str) + "-" + s["item_id"].astype(str) + "-"
                      + s["date"].dt.strftime("%Y%m%d"),
        "store_id": s["store_id"], "item_id": s["item_id"],
        "sold_at": s["date"].map(sold_at),
        "quantity": s["sales"], "unit_price": price.round(2),
        "amount": (s["sales"] * price).round(2),
        "weekday": s["weekday_label"],
    })
    tx = {}
    tx["pos/sales_lines.csv"] = _by_date(sales, "date", COLUMNS["pos/sales_lines.csv"])
    stock = pd.DataFrame({"date": daily["date"], "store_id": daily["store_id"], "item_id": daily["item_id"],
                          "snapshot_at": daily["date"].map(snap_at), "on_hand_qty": daily["closing"]})
    for day, store in r.missing_stock_counts:
        stock = stock[~((stock["date"] == day) & (stock["store_id"] == store))]
    tx["pos/stock_levels.csv"] = _by_date(stock, "date", COLUMNS["pos/stock_levels.csv"])
    w = daily[daily["waste"] > 0]
    waste = pd.DataFrame({"date": w["date"], "store_id": w["store_id"], "item_id": w["item_id"],
                          "waste_date": w["date"].dt.strftime("%Y-%m-%d"), "quantity": w["waste"],
                          "reason": "expired"})
    tx["pos/waste_lines.csv"] = _by_date(waste, "date", COLUMNS["pos/waste_lines.csv"])
    gr = r.goods_receipts.assign(date=r.goods_receipts["received_date"],
                                 received_date=_iso_date(r.goods_receipts["received_date"]))
    tx["mms/goods_receipts.csv"] = _by_date(gr, "date", COLUMNS["mms/goods_receipts.csv"])
    wcols = COLUMNS["mms/weather.csv"]
    wa = r.weather.assign(weather_date=_iso_date(r.weather["weather_date"]), is_forecast="false",
                          date=r.weather["weather_date"])
    wf = r.weather_forecasts.assign(weather_date=_iso_date(r.weather_forecasts["weather_date"]),
                                    is_forecast="true", date=r.weather_forecasts["issue_date"])
    tx["mms/weather.csv"] = _by_date(pd.concat([wa[wcols + ["date"]], wf[wcols + ["date"]]], ignore_index=True),
                                     "date", wcols)
    prep["tx"] = tx
    # purchase orders: rendered without status (it depends on D), sliced by order date
    po = r.purchase_orders.sort_values("order_date", kind="stable").reset_index(drop=True)
    pcols = COLUMNS["mms/purchase_orders.csv"][:-1]
    po_s = po.assign(order_date=_iso_date(po["order_date"]), due_date=_iso_date(po["due_date"]))
    prep["po_lines"] = np.array(po_s[pcols].to_csv(index=False, header=False, lineterminator="\n")
                                .split("\n")[:-1], dtype=object) if len(po) else np.array([], dtype=object)
    prep["po_order"] = po["order_date"].to_numpy()
    prep["po_due"] = po["due_date"].to_numpy()
    prep["max_lead"] = int((po["due_date"] - po["order_date"]).dt.days.max()) if len(po) else 0
    cal = r.calendar.assign(calendar_date=_iso_date(r.calendar["calendar_date"]),
                            is_public_holiday=_bool(r.calendar["is_public_holiday"]),
                            is_school_holiday=_bool(r.calendar["is_school_holiday"]))
    prep["cal_lines"] = np.array(cal[COLUMNS["mms/calendar.csv"]].to_csv(index=False, header=False,
                                 lineterminator="\n").split("\n")[:-1], dtype=object)
    prep["cal_dates"] = r.calendar["calendar_date"].to_numpy()
    pr = r.promotions.assign(start_date=_iso_date(r.promotions["start_date"]),
                             end_date=_iso_date(r.promotions["end_date"]))
    prep["promo_lines"] = np.array(pr[COLUMNS["mms/promotions.csv"]].to_csv(index=False, header=False,
                                   lineterminator="\n").split("\n")[:-1], dtype=object) if len(pr) \
        else np.array([], dtype=object)
    prep["promo_start"] = r.promotions["start_date"].to_numpy()
    prep["promo_end"] = r.promotions["end_date"].to_numpy()
    return prep


def _join(header: list[str], lines) -> str:
    return _header(header) + "".join(x + "\n" for x in lines)


def _day_files(prep: dict, day: pd.Timestamp) -> dict[str, str]:
    files: dict[str, str] = dict(prep["masters"])
    for name, by_day in prep["tx"].items():
        files[name] = _header(COLUMNS[name]) + by_day.get(day, "")
    d64 = np.datetime64(day)
    # purchase orders created on D, received (changed) on D, or still open at the end of D
    od, due = prep["po_order"], prep["po_due"]
    lo = np.searchsorted(od, d64 - np.timedelta64(prep["max_lead"], "D"), "left")
    hi = np.searchsorted(od, d64, "right")
    idx = lo + np.flatnonzero(due[lo:hi] >= d64)
    status = np.where(due[idx] == d64, ",received", ",open")
    files["mms/purchase_orders.csv"] = _join(COLUMNS["mms/purchase_orders.csv"],
                                             (a + b for a, b in zip(prep["po_lines"][idx], status, strict=True)))
    m = (prep["promo_start"] <= d64 + np.timedelta64(PROMO_AHEAD, "D")) & (
        prep["promo_end"] >= d64 - np.timedelta64(PROMO_BACK, "D"))
    files["mms/promotions.csv"] = _join(COLUMNS["mms/promotions.csv"], prep["promo_lines"][m])
    cd = prep["cal_dates"]
    lo = np.searchsorted(cd, d64 - np.timedelta64(CAL_BACK, "D"), "left")
    hi = np.searchsorted(cd, d64 + np.timedelta64(CAL_AHEAD, "D"), "right")
    files["mms/calendar.csv"] = _join(COLUMNS["mms/calendar.csv"], prep["cal_lines"][lo:hi])
    return files


def day_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def _write_day(root: Path, day: dt.date, files: dict[str, str]) -> None:
    final = root / day.isoformat()
    tmp = root / f".tmp-{day.isoformat()}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        for name, text in files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except BaseException:
        # Ctrl-C or a full disk: the temp folder is named after this process, so no later run would remove it
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        old = root / f".old-{day.isoformat()}-{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)


def write_exports(retailer: Retailer, root: Path, start: dt.date | None = None, end: dt.date | None = None,
                  force: bool = False, progress: Progress | None = None, tz: str | None = None) -> dict:
    """Write the exports of every business day in [start, end] (default: the whole panel)."""
    t0 = time.perf_counter()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tz = tz or get_settings().timezone
    days = [d for d in retailer.dates if (start is None or d.date() >= start) and (end is None or d.date() <= end)]
    todo = [d for d in days if force or not day_complete(root / d.date().isoformat())]
    rows: dict[str, int] = {name: 0 for name in FILES}
    if progress:
        progress(len(days) - len(todo), len(days))
    if todo:
        prep = _prepare(retailer, tz)
        for i, d in enumerate(todo, 1):
            files = _day_files(prep, d)
            for name, text in files.items():
                rows[name] += text.count("\n") - 1
            _write_day(root, d.date(), files)
            if progress:
                progress(len(days) - len(todo) + i, len(days))
    return {
        "root": str(root),
        "first_date": days[0].date().isoformat() if days else None,
        "last_date": days[-1].date().isoformat() if days else None,
        "days_total": len(days), "days_written": len(todo), "days_skipped": len(days) - len(todo),
        "seconds": round(time.perf_counter() - t0, 2), "rows": rows,
    }


def ensure_exports(settings: Settings | None = None, force: bool = False,
                   progress: Progress | None = None) -> ExportSummary:
    """Fetch the panel (cached), generate the retailer and write every missing export day."""
    from replenish.data.bakery import load_panel
    from replenish.data.retailer import build_retailer

    settings = settings or get_settings()
    t0 = time.perf_counter()
    panel = load_panel(settings)
    root = settings.exports_dir
    dates = pd.DatetimeIndex(np.sort(panel["date"].unique()))
    if not force and root.exists() and all(day_complete(root / d.date().isoformat()) for d in dates):
        if progress:
            progress(len(dates), len(dates))
        return ExportSummary(str(root), dates[0].date().isoformat(), dates[-1].date().isoformat(), len(dates), 0,
                             len(dates), round(time.perf_counter() - t0, 2))
    retailer = build_retailer(panel, seed=settings.seed)
    res = write_exports(retailer, root, force=force, progress=progress, tz=settings.timezone)
    return ExportSummary(res["root"], res["first_date"], res["last_date"], res["days_total"], res["days_written"],
                         res["days_skipped"], round(time.perf_counter() - t0, 2), res["rows"], retailer.stats)

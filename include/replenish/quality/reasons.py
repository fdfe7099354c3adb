"""The quality gate's verdicts in words: one sentence per blocked store and failed check.

A buyer reads these in the digest and a data team in the run's figures, so they say what was found
in the store's data (numbers, days, what was expected), not which expectation failed. Values that
come from an export (a quarantine reason, a receipt id) are shortened here and escaped where rendered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from replenish.quality.suites import QualityParams

# Every check in words, for a verdict recorded without details (and as the start of a global verdict).
CHECK_WORDS: dict[str, str] = {
    "stores_master_present": "the store master for the day is missing or broken",
    "missing_store_days": "neither sales lines nor a stock snapshot were delivered for the day",
    "stock_snapshot_freshness": "no stock snapshot taken on the day",
    "stock_in_range": "stock levels that are negative or implausibly large",
    "negative_stock": "negative stock levels",
    "duplicate_receipts": "the same receipt delivered more than once",
    "sales_outside_business_day": "sales lines dated outside the business day (another day's file?)",
    "sales_prices_in_range": "implausible unit prices in the sales",
    "sales_prices_positive": "unit prices of zero or below in the sales",
    "sales_quantities_in_range": "implausible quantities in the sales",
    "unknown_stores_items": "sales or stock of a store or item the master data does not know",
    "sales_collapse": "sales far below the store's usual level for the weekday",
    "quarantined_store_rows": "rows of the store's POS exports were rejected (the day is incomplete)",
    "item_prices_in_range": "the item master is missing or has implausible prices",
    "item_prices_positive": "the item master is missing or has prices of zero or below",
    "mart_daily_demand_keys": "the day's demand in the warehouse is missing or has broken keys",
    "mart_units_sold_non_negative": "negative or missing units sold in the warehouse",
    "sales_spike": "a quantity far above the item's usual level",
    "weekday_label_consistency": "calendar weekday labels that do not match the dates",
    "quarantine_rate": "a high share of the day's rows rejected into quarantine",
}

_EXPORT_TEXT_MAX = 120


def check_words(code: str) -> str:
    """A recorded reason code in words (codes of checks this version does not know are shown as they are)."""
    return CHECK_WORDS.get(code, code.replace("_", " "))


def _num(v: Any) -> str:
    if v is None:
        return "?"
    x = float(v) if isinstance(v, Decimal | int | float) else float(str(v))
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.4g}"


def _short(v: Any) -> str:
    s = " ".join(str(v or "").split())
    return s if len(s) <= _EXPORT_TEXT_MAX else s[: _EXPORT_TEXT_MAX - 3] + "..."


def _plural(n: Any, word: str) -> str:
    k = int(n or 0)
    return f"{k:,} {word}" + ("" if k == 1 else "s")


def _collapse(rows: list[dict[str, Any]], d: dt.date, p: QualityParams) -> str:
    r = rows[0]
    day = d.strftime("%A")
    out = (f"only {_num(r.get('units'))} units sold on {day} {d.isoformat()}, where the store usually sells about "
           f"{_num(round(float(r.get('baseline') or 0)))} on a {day} (median of {_plural(r.get('weeks'), 'week')})")
    left = r.get("left_units")
    if left is None:
        return out + "; no stock snapshots to show the store was closed or sold out"
    return out + f"; by the stock snapshots about {_num(round(float(left)))} units left the shelves"


def _outside_day(rows: list[dict[str, Any]], d: dt.date, p: QualityParams) -> str:
    r = rows[0]
    bad, total = int(r.get("bad_rows") or 0), int(r.get("rows_total") or 0)
    days = [x for x in str(r.get("sold_on_days") or "").split(",") if x]
    if bad == total and len(days) == 1:
        return (f"all {_plural(total, 'sales line')} in the file for {d.isoformat()} were sold on {days[0]}: "
                "another day's sales file")
    first, last = _short(r.get("first_sold_at")), _short(r.get("last_sold_at"))
    when = f"at {first}" if first == last else f"from {first} to {last}"
    when += " local time"
    return f"{bad:,} of {_plural(total, 'sales line')} sold outside {d.isoformat()} ({when})"


def _prices(rows: list[dict[str, Any]], d: dt.date, p: QualityParams) -> str:
    r = rows[0]
    lo, hi = _num(r.get("min_unit_price")), _num(r.get("max_unit_price"))
    found = lo if lo == hi else f"{lo} to {hi}"
    item = r.get("min_item_price")
    ref = f"; the item master says {_num(item)}" if item is not None else ""
    return (f"{_plural(r.get('bad_rows'), 'sales line')} with an implausible unit price ({found}{ref}; accepted: "
            f"{_num(p.min_unit_price)} to {_num(p.max_unit_price)} and {p.min_price_ratio:g}x to "
            f"{p.max_price_ratio:g}x the item's price)")


def _quantities(rows: list[dict[str, Any]], d: dt.date, p: QualityParams) -> str:
    r = rows[0]
    lo, hi = _num(r.get("min_quantity")), _num(r.get("max_quantity"))
    found = lo if lo == hi else f"{lo} to {hi}"
    return (f"{_plural(r.get('bad_rows'), 'sales line')} with an implausible quantity ({found}; accepted: 0 to "
            f"{_num(p.max_line_quantity)})")


def _unknown(rows: list[dict[str, Any]], d: dt.date, p: QualityParams) -> str:
    r = rows[0]
    if r.get("unknown_store"):
        return (f"store {_short(r.get('store_id'))} is not in the store master "
                f"({_plural(r.get('bad_rows'), 'row')} of {_short(r.get('sources'))})")
    return (f"{_plural(r.get('unknown_item_rows'), 'row')} for items the item master does not know "
            f"({_short(r.get('unknown_item_ids'))})")


def _stock_range(rows: list[dict[str, Any]], d: dt.date, p: QualityParams) -> str:
    r = rows[0]
    lo, hi = _num(r.get("min_on_hand_qty")), _num(r.get("max_on_hand_qty"))
    found = lo if lo == hi else f"{lo} to {hi}"
    return f"{_plural(r.get('bad_rows'), 'stock level')} outside 0 to {_num(p.max_on_hand_qty)} ({found})"


def _freshness(rows: list[dict[str, Any]], d: dt.date, p: QualityParams) -> str:
    r = rows[0]
    if not r.get("snapshot_rows"):
        return f"no stock snapshot delivered for {d.isoformat()}"
    return (f"{int(r.get('stale_rows') or 0):,} of {_plural(r.get('snapshot_rows'), 'stock snapshot')} not taken "
            f"on {d.isoformat()} (latest {_short(r.get('max_snapshot_at'))})")


def _duplicates(rows: list[dict[str, Any]], d: dt.date, p: QualityParams) -> str:
    return (f"{_plural(len(rows), 'receipt id')} delivered more than once "
            f"(e.g. {_short(rows[0].get('receipt_id'))})")


def _quarantined(rows: list[dict[str, Any]], d: dt.date, p: QualityParams) -> str:
    r = rows[0]
    return (f"{_plural(r.get('bad_rows'), 'row')} of its POS exports rejected into quarantine "
            f"(field {_short(r.get('fields'))}: {_short(r.get('first_reason'))})")


def _missing(rows: list[dict[str, Any]], d: dt.date, p: QualityParams) -> str:
    return f"neither sales lines nor a stock snapshot delivered for {d.isoformat()}"


def _mart_units(rows: list[dict[str, Any]], d: dt.date, p: QualityParams) -> str:
    return f"{_plural(rows[0].get('bad_rows'), 'row')} with negative or missing units sold in the warehouse"


_STORE_SENTENCES: dict[str, Callable[[list[dict[str, Any]], dt.date, QualityParams], str]] = {
    "sales_collapse": _collapse,
    "sales_outside_business_day": _outside_day,
    "sales_prices_in_range": _prices,
    "sales_quantities_in_range": _quantities,
    "unknown_stores_items": _unknown,
    "stock_in_range": _stock_range,
    "stock_snapshot_freshness": _freshness,
    "duplicate_receipts": _duplicates,
    "quarantined_store_rows": _quarantined,
    "missing_store_days": _missing,
    "mart_units_sold_non_negative": _mart_units,
}


def store_sentence(check: str, rows: list[dict[str, Any]], business_date: dt.date, params: QualityParams) -> str:
    """Why ``check`` blocks one store, from that store's unexpected rows."""
    fn = _STORE_SENTENCES.get(check)
    if fn is None or not rows:
        return check_words(check)
    try:
        return fn(rows, business_date, params)
    except (TypeError, ValueError, KeyError):  # an unexpected row shape must not lose the verdict
        return check_words(check)


def global_sentence(check: str, error: str | None = None) -> str:
    """Why a check blocks every store (a global check, or one whose failure names no store)."""
    if error:
        return f"the check '{check}' could not run ({_short(error)}): every store is held back"
    return f"{check_words(check)}: applies to every store"

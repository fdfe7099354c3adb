"""Order opportunities per store x supplier for one order date.

An opportunity exists on order date O when O's ISO weekday (1=Mon..7=Sun) is an order
weekday. Its cutoff is O at ``cutoff_time`` in the business time zone (``replenish.clock``; an aware
datetime). The nightly run for business date D proposes the opportunities of O = D + 1
(``clock.order_date_for``), so their cutoffs lie after the run.
Delivery = O + lead_time_days, shifted forward to the next non-holiday date (no delivery on a
public holiday; optional ``delivery_weekdays`` restricts delivery days further).
Coverage window = [delivery_date, next_delivery_date) where next_delivery_date is the delivery
brought by the next order opportunity after D (strictly later than delivery_date, so two
orders whose deliveries collapse onto the same date after a holiday shift are skipped over).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from replenish import clock

_MAX_SCAN_DAYS = 62


@dataclass(frozen=True)
class OrderOpportunity:
    store_id: int
    supplier_id: int
    order_date: dt.date
    cutoff_at: dt.datetime
    delivery_date: dt.date
    next_delivery_date: dt.date

    @property
    def coverage_days(self) -> int:
        return (self.next_delivery_date - self.delivery_date).days

    def is_past_cutoff(self, now: dt.datetime) -> bool:
        return now >= self.cutoff_at


def parse_weekdays(value: str | Iterable[int]) -> frozenset[int]:
    """``'1|3|5'`` (or ``'1,3,5'`` or an iterable) -> {1, 3, 5}; anything outside 1..7 is an error."""
    if isinstance(value, str):
        parts = [p for p in value.replace(",", "|").split("|") if p.strip()]
        days = frozenset(int(p) for p in parts)
    else:
        days = frozenset(int(v) for v in value)
    if not days or not days <= set(range(1, 8)):
        raise ValueError(f"order weekdays must be ISO 1..7, got {value!r}")
    return days


def parse_cutoff(value: str | dt.time | None) -> dt.time:
    if value is None:
        return dt.time(23, 59)
    if isinstance(value, dt.time):
        return value
    return dt.time.fromisoformat(str(value))


def delivery_for(
    order_date: dt.date,
    lead_time_days: int,
    holidays: frozenset[dt.date],
    delivery_weekdays: frozenset[int] | None = None,
) -> dt.date:
    day = order_date + dt.timedelta(days=int(lead_time_days))
    for _ in range(_MAX_SCAN_DAYS):
        if day not in holidays and (delivery_weekdays is None or day.isoweekday() in delivery_weekdays):
            return day
        day += dt.timedelta(days=1)
    raise ValueError(f"no delivery day within {_MAX_SCAN_DAYS} days after {order_date}")


def opportunity(
    store_id: int,
    supplier_id: int,
    order_date: dt.date,
    *,
    order_weekdays,
    cutoff_time=None,
    lead_time_days: int,
    holidays: Iterable[dt.date] = (),
    delivery_weekdays: Iterable[int] | None = None,
) -> OrderOpportunity | None:
    """The order opportunity on ``order_date`` or None when it is not an order day."""
    weekdays = parse_weekdays(order_weekdays)
    if order_date.isoweekday() not in weekdays:
        return None
    hol = frozenset(holidays)
    dw = frozenset(delivery_weekdays) if delivery_weekdays is not None else None
    delivery = delivery_for(order_date, lead_time_days, hol, dw)
    nxt = None
    day = order_date
    for _ in range(_MAX_SCAN_DAYS):
        day += dt.timedelta(days=1)
        if day.isoweekday() in weekdays:
            cand = delivery_for(day, lead_time_days, hol, dw)
            if cand > delivery:
                nxt = cand
                break
    if nxt is None:
        raise ValueError(f"no next delivery after {delivery} for {store_id}/{supplier_id}")
    cutoff_at = clock.at(order_date, parse_cutoff(cutoff_time))
    return OrderOpportunity(int(store_id), int(supplier_id), order_date, cutoff_at, delivery, nxt)


def opportunities(schedules, order_date: dt.date, holidays: Iterable[dt.date] = ()) -> list[OrderOpportunity]:
    """``schedules``: DataFrame/records with store_id, supplier_id, order_weekdays, cutoff_time,
    lead_time_days (one row per store x supplier). Returns the opportunities on ``order_date``."""
    records = schedules.to_dict("records") if hasattr(schedules, "to_dict") else list(schedules)
    hol = frozenset(holidays)
    out = []
    for r in records:
        opp = opportunity(
            r["store_id"],
            r["supplier_id"],
            order_date,
            order_weekdays=r["order_weekdays"],
            cutoff_time=r.get("cutoff_time"),
            lead_time_days=int(r["lead_time_days"]),
            holidays=hol,
        )
        if opp is not None:
            out.append(opp)
    return out

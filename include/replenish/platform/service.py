"""``/service``: how the orders served the items a person looks after, from the last night's accuracy verdict.

Per item: the share of the days with sales that sold out against the share its ordering asks for, and the same
days by where their stock came from (nothing delivered, delivered short, ordered outside Replenish, quantity
changed by a person, sent as proposed): ``replenish accuracy``'s figures as the nightly forecast stage recorded
them (``ops.stage_results``), so the page reads one row instead of scanning the chain's forecasts.

The items shown are those of the orders the person may see (``access.scope_sql``) in the last weeks, with the
chain's figures over every store of the item; a store manager sees their own store's figures (the night's rows by
store, ``forecast.stockout_causes``) with the chain's beside them.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import text

from replenish import display_names
from replenish.forecasting import stockout_causes
from replenish.forecasting.accuracy import (
    CAUSES,
    STOCKOUT_POINTS_LIMIT,
    drift_findings,
    recorded_verdict,
    service_by_item,
)
from replenish.platform.access import scope_sql
from replenish.platform.web import Session, render

router = APIRouter(include_in_schema=False)

# the orders whose items make a person's list: a buyer's suppliers change, and an item not ordered for weeks is
# not theirs to watch any more
SCOPE_DAYS = 56


def items_in_scope(conn: Any, principal: Any, today: dt.date) -> set[int] | None:
    """The items of the orders ``principal`` may see, delivered in the SCOPE_DAYS around today (None: all)."""
    if principal.role == "admin":
        return None
    where, params = scope_sql(principal, conn)
    rows = conn.execute(text(
        f"""SELECT DISTINCT l.item_id FROM orders.purchase_orders p
            JOIN orders.order_lines l ON l.order_id = p.order_id
            WHERE p.delivery_date BETWEEN :since AND :until AND {where}"""),
        {**params, "since": today - dt.timedelta(days=SCOPE_DAYS), "until": today + dt.timedelta(days=SCOPE_DAYS)})
    return {int(r[0]) for r in rows}


def _card(r: dict[str, Any], name: str) -> dict[str, Any]:
    """An item's card: its figures, the causes in their fixed order, and whether its stock-outs are over what its
    ordering asks for by more than the limit *and* by more than chance on so few days would give (two binomial
    standard deviations: a store's 12 days move a 30 % share by about 13 points either way)."""
    causes = r.get("causes") or {}
    share, asked, days = r["stockout_share"], r["asked"], r["days_with_sales"]
    gap = None if share is None or asked is None else share - asked
    off = gap is not None and gap > STOCKOUT_POINTS_LIMIT
    chance = 2 * math.sqrt(asked * (1 - asked) / days) if off and days else 0.0
    return {**r, "item_name": name, "gap": gap, "is_over": off and (gap or 0.0) > chance,
            "is_too_few_days": off and (gap or 0.0) <= chance,
            "causes": [(k, label, causes.get(k)) for k, label in CAUSES.items()]}


@router.get("/service", response_class=HTMLResponse)
def service(request: Request, s: Session) -> HTMLResponse:
    ctx = request.app.state.ctx
    today = ctx.now().date()
    p = s.principal
    own: list[dict[str, Any]] | None = None   # a store manager's own store(s); None: the chain's figures alone
    with ctx.engine.connect() as conn:
        found = recorded_verdict(conn, today, latest=True)
        items = items_in_scope(conn, p, today)
        nm = display_names.names(conn)
        if found and p.role == "store_manager":
            own = service_by_item(stockout_causes.for_stores(conn, found[0], list(p.stores)))
    rows: list[dict[str, Any]] = []
    reasons: list[str] = []
    business_date, doc = found if found else (None, {})
    if found:
        chain = {r["item_id"]: r for r in doc["service_by_item"] if items is None or r["item_id"] in items}
        # the model's own drift (intervals, bias, error) in words; an item's is its card below
        reasons = [words for topic, words in drift_findings(doc["overall"], list(chain.values()))
                   if not topic.startswith("item ")]
        for r in (own if own is not None else chain.values()):
            card = _card(r, nm["item"].get(r["item_id"], f"Item {r['item_id']}"))
            # beside a store's own figures, the same item over every store
            rows.append({**card, "chain": chain.get(r["item_id"]) if own is not None else None})
        rows.sort(key=lambda r: -(r["gap"] or 0))
    where = (", ".join(nm["store"].get(i, f"Store {i}") for i in p.stores) if own is not None else None)
    return render(request, "service.html.j2", session=s, rows=rows, reasons=reasons, verdict=doc.get("status"),
                  business_date=business_date, causes=CAUSES, where=where,
                  report=f"/reports/forecast_{business_date.isoformat()}.html"
                  if business_date and p.is_central else None)

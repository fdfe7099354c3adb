"""``/service``: how the orders served the items a person looks after, from the last night's accuracy verdict.

Per item: the share of the days with sales that sold out against the share its ordering asks for, and the same
days by where their stock came from (nothing delivered, delivered short, ordered outside Replenish, quantity
changed by a person, sent as proposed): ``replenish accuracy``'s figures as the nightly forecast stage recorded
them (``ops.stage_results``), so the page reads one row instead of scanning the chain's forecasts.

The items shown are those of the orders the person may see (``access.scope_sql``) in the last weeks; the
figures are the chain's, over every store of the item.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import text

from replenish.forecasting.accuracy import CAUSES, drift_findings, recorded_verdict
from replenish.platform import order_queries
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


@router.get("/service", response_class=HTMLResponse)
def service(request: Request, s: Session) -> HTMLResponse:
    ctx = request.app.state.ctx
    today = ctx.now().date()
    with ctx.engine.connect() as conn:
        found = recorded_verdict(conn, today, latest=True)
        items = items_in_scope(conn, s.principal, today)
        nm = order_queries.names(conn)
    rows: list[dict[str, Any]] = []
    reasons: list[str] = []
    business_date, doc = found if found else (None, {})
    if found:
        service_rows = [r for r in doc["service_by_item"] if items is None or r["item_id"] in items]
        # the model's own drift (intervals, bias, error) in words; an item's is its card below
        reasons = [words for topic, words in drift_findings(doc["overall"], service_rows)
                   if not topic.startswith("item ")]
        for r in service_rows:
            causes = r.get("causes") or {}
            rows.append({**r, "item_name": nm["item"].get(r["item_id"], f"Item {r['item_id']}"),
                         "gap": None if r["stockout_share"] is None or r["asked"] is None
                         else r["stockout_share"] - r["asked"],
                         "causes": [(k, label, causes.get(k)) for k, label in CAUSES.items()]})
        rows.sort(key=lambda r: -(r["gap"] or 0))
    return render(request, "service.html.j2", session=s, rows=rows, reasons=reasons, verdict=doc.get("status"),
                  business_date=business_date, causes=CAUSES,
                  report=f"/reports/forecast_{business_date.isoformat()}.html" if business_date else None)

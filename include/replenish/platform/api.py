"""POS API ``/api/v1``: one API key per till, scoped to its store.

- GET  /proposals?delivery_date=        open orders (with lines) of the key's store
- GET  /orders/{order_id}               status, version, lines, outbox state
- PATCH /orders/{order_id}/lines        quantity changes (optimistic locking through ``version``)
- POST /orders/{order_id}/approve       approve (+ ``send_now``); requires ``Idempotency-Key``
- POST /receipts                        sales receipt from the till into raw.pos_receipts (idempotent per store
                                        and receipt id)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import text

from replenish.extract.contract import MAX_UTC_OFFSET_MINUTES
from replenish.ids import MAX_ID, parse_id
from replenish.orders.order_tables import OPEN_STATUSES
from replenish.platform import api_keys, order_actions
from replenish.platform.access import Principal, scope_sql
from replenish.platform.errors import FieldError, PlatformError, invalid, not_found
from replenish.platform.labels import without_paths
from replenish.platform.order_queries import get_order, lines_by_order, order_lines, outbox_by_order, outbox_state

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from replenish.platform.context import PlatformContext

log = logging.getLogger(__name__)
bearer = HTTPBearer(auto_error=False, description="POS terminal API key")
key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="POS terminal API key (alternative)")

ID = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _id_input(value: object) -> object:
    """pydantic's lax int would read true as 1, 1.0 as 1 and '1_000' as 1000: an id is a JSON integer, or its
    digits as text (read as replenish.ids reads what a person types)."""
    if isinstance(value, bool):
        raise ValueError("an id is a number, not true or false")
    if isinstance(value, float):
        # a till that sends 1.0 computed the id somewhere (float arithmetic, a spreadsheet); 1.0000000000000002
        # would be item 1 too: refuse what is not written as a whole number
        raise ValueError("an id is a whole number written without a decimal point or exponent")
    if isinstance(value, str):
        parsed = parse_id(value)
        if parsed is None:
            raise ValueError(f"an id is a whole number from 0 to {MAX_ID}")
        return parsed
    return value


# a store, supplier or item id (replenish.ids): JSON numbers; numeric text is read too (terminals written before ids
# were numbers in the API). The bounds before the validator: after it, pydantic writes them into the OpenAPI schema
# as "ge"/"le", which no client generator reads, instead of "minimum"/"maximum".
WarehouseId = Annotated[int, Field(ge=0, le=MAX_ID), BeforeValidator(_id_input)]

# An order line's quantity is a JSON integer: pydantic's lax int would read true as 1, 1e3 (1000.0) and "1_000" as
# 1000. Its range is checked with pack size and MOQ (order_actions.qty_errors), so that a till gets the errors of
# every line in one answer; the schema states it for client generators.
OrderQty = Annotated[int, Field(strict=True, json_schema_extra={"minimum": 0, "maximum": order_actions.MAX_QTY})]

PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _decimal_input(value: object) -> object:
    """pydantic reads decimal text as Python does: "1_0" as 10, "1e3" as 1000, " 1.5 ", "+1", ".5" and other
    scripts' digits too. Text is plain decimal notation; JSON numbers are read by their value."""
    if isinstance(value, str) and not PLAIN_DECIMAL.fullmatch(value):
        raise ValueError('a JSON number or decimal text such as "1.25" (digits, an optional "-" and decimal point)')
    return value


def _plain_decimal_schema(schema: dict[str, Any]) -> None:
    for alternative in schema.get("anyOf", []):
        if alternative.get("type") == "string":
            alternative["pattern"] = f"^{PLAIN_DECIMAL.pattern}$"


# a receipt's quantity or price: a JSON number, or the number as text
PlainDecimal = Annotated[Decimal, BeforeValidator(_decimal_input), Field(json_schema_extra=_plain_decimal_schema)]


class FieldErrorOut(BaseModel):
    field: str = Field(description="JSON pointer (RFC 6901) into the request part, e.g. /lines/0/qty; '' = all of it")
    in_: str = Field(alias="in", description="body | query | path | header")
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: list[FieldErrorOut] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody, "description": d}
    for s, d in (
        (401, "missing, unknown or revoked API key"),
        (404, "not found (or not this key's store)"),
        (409, "conflict: version_conflict / order_locked / empty_order / receipt_conflict"),
        (422, "validation_error (field-level) / idempotency_key_reused"),
        (429, "rate_limited (see Retry-After)"),
    )
}


class LineOut(BaseModel):
    item_id: int
    item_name: str = Field(description="the item master's name (the item id when the master does not know it)")
    pack_size: int = Field(description="quantities are multiples of this")
    min_order_qty: int = Field(description="the supplier's minimum per line (0: none)")
    proposed_qty: int
    final_qty: int
    unit_price: Decimal | None = Field(None, description="purchase price per unit, EUR (null when unknown)")
    line_value: Decimal | None = Field(None, description="final_qty x unit_price, EUR")
    why: str | None = None
    edited_by: str | None = None
    edit_reason: str | None = None


class OutboxOut(BaseModel):
    channel: str
    status: str
    attempts: int
    last_error: str | None = None
    sent_at: dt.datetime | None = None
    kept_on_disk: bool = Field(
        False, description="sent, but as an e-mail only written to the server's outbox folder (no SendGrid key is "
                           "configured): the supplier has not got it")


def _outbox_out(box: dict[str, Any]) -> OutboxOut:
    """A till reads the channel's error without the server's folders (labels.without_paths)."""
    out = {k: box[k] for k in OutboxOut.model_fields}
    out["last_error"] = without_paths(box["last_error"]) if box["last_error"] else None
    return OutboxOut(**out)


class OrderOut(BaseModel):
    order_id: str
    store_id: int
    supplier_id: int
    delivery_date: dt.date
    cutoff_at: dt.datetime | None = None
    status: str
    version: int
    reasons: list[str]
    reason_texts: list[str] = Field(description="the reasons in words, in the order of ``reasons``")
    order_value: Decimal | None = Field(None, description="sum of the line values, EUR")
    lines: list[LineOut]
    outbox: OutboxOut | None = None


class ProposalsOut(BaseModel):
    store_id: int
    delivery_date: dt.date | None
    orders: list[OrderOut]


class LinePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: WarehouseId
    qty: OrderQty = Field(description="new quantity (0 = none); validated against pack size and MOQ")
    reason: str = Field(description="reason code: " + ", ".join(order_actions.EDIT_REASONS))


class LinesPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(strict=True, description="the order version the change is based on (from GET): a change "
                         "made on another device in between answers 409 version_conflict")
    lines: list[LinePatch] = Field(min_length=1, max_length=500)


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(strict=True, description="the order version the approval is based on (from GET)")
    send_now: bool = Field(default=False, description="run the dispatcher right after the approval")


# Receipts the till may push, in business days around the platform's today: a till that was offline over a
# long weekend still delivers; a receipt from years away is a broken clock or a forged body.
RECEIPT_DAYS_BACK = 7
RECEIPT_DAYS_AHEAD = 1


def _postgres_offset(value: dt.datetime) -> dt.datetime:
    """Python takes UTC offsets up to 23:59, PostgreSQL's timestamptz up to 15:59 (the export contract's rule)."""
    offset = value.utcoffset()
    if offset is not None and abs(offset) > dt.timedelta(minutes=MAX_UTC_OFFSET_MINUTES):
        limit = f"{MAX_UTC_OFFSET_MINUTES // 60:02d}:{MAX_UTC_OFFSET_MINUTES % 60:02d}"
        raise ValueError(f"UTC offset out of range (-{limit}..+{limit})")
    return value


def _iso_text(value: object) -> object:
    """A timestamp as ISO-8601 text only: pydantic would also read a number as Unix seconds."""
    if not isinstance(value, str | dt.datetime):
        raise ValueError("must be ISO-8601 text with a UTC offset")
    return value


TillTimestamp = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_postgres_offset)]


class ReceiptLine(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    item_id: WarehouseId
    qty: PlainDecimal = Field(ge=-10_000, le=10_000, max_digits=12, decimal_places=3, description="negative = return")
    unit_price: PlainDecimal = Field(ge=0, le=100_000, max_digits=12, decimal_places=2)


class ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receipt_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$",
                            description="unique per store (two stores may use the same id)")
    store_id: WarehouseId | None = Field(default=None, description="must be the key's store when given")
    sold_at: TillTimestamp = Field(
        description=f"ISO-8601 with a UTC offset within -15:59..+15:59; its business date at most "
        f"{RECEIPT_DAYS_BACK} days before and {RECEIPT_DAYS_AHEAD} day after the platform's today"
    )
    lines: list[ReceiptLine] = Field(min_length=1, max_length=500)


class ReceiptOut(BaseModel):
    receipt_id: str
    status: str  # "created" | "duplicate"
    business_date: dt.date
    total: Decimal


def terminal(
    request: Request,
    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(key_header)],
) -> Principal:
    """The API key's principal; 401 without a valid key, 429 when its bucket is empty."""
    ctx = request.app.state.ctx
    raw = cred.credentials if cred else header_key
    if not raw:
        # a key sent without "Bearer " (or as "Token ...") is not read at all: say how it is read, not only that
        # none came
        sent = "the Authorization header must read 'Bearer <API key>'" if request.headers.get("authorization") \
            else "API key required"
        raise PlatformError(401, "unauthorized", f"{sent}: send 'Authorization: Bearer <API key>' or 'X-API-Key: "
                                                 "<API key>'", headers={"WWW-Authenticate": "Bearer"})
    with ctx.engine.begin() as conn:
        key = api_keys.lookup(conn, raw)
    if key is None:
        raise PlatformError(401, "unauthorized", "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    wait = ctx.api_limiter.take(f"key:{key.key_id}")
    if wait:
        raise PlatformError(
            429, "rate_limited", "too many requests for this API key", headers={"Retry-After": str(int(wait) + 1)}
        )
    return Principal.of_key(key)


Terminal = Annotated[Principal, Depends(terminal)]
router = APIRouter(tags=["pos"], responses=ERRORS)


def order_out(conn, head: dict, lines: list[dict] | None = None, box: dict | None = None,
              *, prefetched: bool = False, names: dict | None = None) -> OrderOut:
    """``prefetched``: ``lines`` and ``box`` were loaded for many orders at once (see proposals)."""
    from replenish.display_names import names as load_names
    from replenish.platform.labels import reason_label
    from replenish.platform.order_queries import ItemRule, item_rules, line_prices

    if not prefetched:
        lines = order_lines(conn, head["order_id"])
        box = outbox_state(conn, head["order_id"])
    lines = lines or []
    nm = names if names is not None else load_names(conn)
    rules = item_rules(conn, head, lines)
    prices = line_prices(conn, head, lines)
    out_lines = []
    for ln in lines:
        iid = ln["item_id"]
        rule = rules.get(iid, ItemRule())
        price = prices.get(iid)
        unit = None if price is None else Decimal(str(price)).quantize(Decimal("0.01"))
        out_lines.append(LineOut(
            item_id=iid,
            item_name=nm.get("item", {}).get(iid, str(iid)),
            pack_size=rule.pack_size,
            min_order_qty=rule.moq,
            proposed_qty=ln["proposed_qty"],
            final_qty=ln["final_qty"],
            unit_price=unit,
            line_value=None if unit is None else (unit * ln["final_qty"]).quantize(Decimal("0.01")),
            why=(ln["explanation"] or {}).get("why"),
            edited_by=ln["edited_by"],
            edit_reason=ln["edit_reason"],
        ))
    values = [ln.line_value for ln in out_lines if ln.line_value is not None]
    reasons = list(head["reasons"] or [])
    return OrderOut(
        order_id=head["order_id"],
        store_id=head["store_id"],
        supplier_id=head["supplier_id"],
        delivery_date=head["delivery_date"],
        cutoff_at=head["cutoff_at"],
        status=head["status"],
        version=head["version"],
        reasons=reasons,
        reason_texts=[reason_label(r, nm.get("item")) for r in reasons],
        order_value=sum(values, Decimal(0)) if values else None,
        lines=out_lines,
        outbox=_outbox_out(box) if box else None,
    )


@router.get("/proposals", response_model=ProposalsOut, summary="Open orders of the key's store")
def proposals(
    request: Request,
    p: Terminal,
    delivery_date: Annotated[dt.date | None, Query(description="only this delivery date")] = None,
) -> ProposalsOut:
    return _store_orders(request, p, delivery_date, OPEN_STATUSES)


@router.get("/orders", response_model=ProposalsOut,
            summary="Every order of the key's store for a delivery date, whatever its status (what is on its way)")
def orders_of_delivery_date(
    request: Request,
    p: Terminal,
    delivery_date: Annotated[dt.date, Query(description="the delivery date")],
) -> ProposalsOut:
    # a till shows what arrives tomorrow: the orders sent automatically as well as those still open
    return _store_orders(request, p, delivery_date, None)


def _store_orders(request: Request, p: Principal, delivery_date: dt.date | None,
                  statuses: tuple[str, ...] | None) -> ProposalsOut:
    ctx = request.app.state.ctx
    with ctx.engine.connect() as conn:
        scope, params = scope_sql(p, conn)
        where = scope
        if statuses is not None:
            params["st"] = list(statuses)
            where += " AND p.status = ANY(:st)"
        if delivery_date:
            where += " AND p.delivery_date = :d"
            params["d"] = delivery_date
        heads = conn.execute(
            text(f"SELECT p.* FROM orders.purchase_orders p WHERE {where} ORDER BY delivery_date, supplier_id"),
            params,
        ).mappings()
        heads_ = [dict(h) for h in heads.all()]
        ids = [h["order_id"] for h in heads_]
        lines, boxes = lines_by_order(conn, ids), outbox_by_order(conn, ids)
        from replenish.display_names import names

        nm = names(conn)
        orders = [order_out(conn, h, lines.get(h["order_id"], []), boxes.get(h["order_id"]), prefetched=True,
                            names=nm) for h in heads_]
    return ProposalsOut(store_id=p.stores[0], delivery_date=delivery_date, orders=orders)


@router.get("/orders/{order_id}", response_model=OrderOut, summary="Order status, version and lines")
def get_order_status(request: Request, p: Terminal, order_id: ID) -> OrderOut:
    with request.app.state.ctx.engine.connect() as conn:
        head = get_order(conn, p, order_id)
        if head is None:
            raise not_found()
        return order_out(conn, head)


@router.patch("/orders/{order_id}/lines", response_model=OrderOut, summary="Change line quantities")
def patch_lines(request: Request, p: Terminal, order_id: ID, body: LinesPatch) -> OrderOut:
    changes = [order_actions.LineChange(ln.item_id, "set", ln.qty, ln.reason) for ln in body.lines]
    with request.app.state.ctx.engine.begin() as conn:
        head = order_actions.change_lines(conn, p, order_id, changes, body.version)
        return order_out(conn, head)


def _request_hash(path: str, body: dict) -> str:
    return hashlib.sha256((path + "\n" + json.dumps(body, sort_keys=True, default=str)).encode()).hexdigest()


@router.post(
    "/orders/{order_id}/approve",
    response_model=OrderOut,
    summary="Approve (and optionally send) an order; idempotent by Idempotency-Key",
)
def approve_order(
    request: Request,
    p: Terminal,
    order_id: ID,
    idempotency_key: Annotated[
        str,
        Header(alias="Idempotency-Key", min_length=1, max_length=200, description="unique per intended approval"),
    ],
    body: ApproveIn,
) -> JSONResponse:
    """A repeated POST with the same key returns the first result (also a first error); the same key with
    another order or body is ``422 idempotency_key_reused``. The key is claimed with the approval in one
    transaction; with ``send_now`` the answer is stored once the send is done (see ``_replay``)."""
    ctx = request.app.state.ctx
    h = _request_hash(f"approve:{order_id}", body.model_dump())
    with ctx.engine.begin() as conn:
        fresh = conn.execute(
            text(
                "INSERT INTO platform.api_idempotency (key_id, idempotency_key, request_hash) VALUES (:k, :i, :h) "
                "ON CONFLICT DO NOTHING RETURNING 1"
            ),
            {"k": p.key_id, "i": idempotency_key, "h": h},
        ).first()
        if fresh is None:
            return _replay(conn, p, order_id, idempotency_key, h)
        try:
            with conn.begin_nested():
                head = order_actions.approve(conn, p, order_id, body.version)
                status, doc = 200, order_out(conn, head).model_dump(mode="json")
        except PlatformError as e:
            status, doc = e.status, e.body()
        sending = status == 200 and body.send_now
        # while sending, the answer is not known yet: no response stored (NULL) until it is
        _store_answer(conn, p, idempotency_key, status, None if sending else doc)
    if sending:
        try:
            ctx.dispatch([order_id])
        except Exception:  # noqa: BLE001 - the approval is committed: the till gets the order as it is (queued)
            log.exception("send now of order %r (API key %r) failed after its approval", order_id, p.name)
        with ctx.engine.begin() as conn:
            head2 = get_order(conn, p, order_id)
            if head2 is not None:
                doc = order_out(conn, head2).model_dump(mode="json")
            # the answer the till gets is the one a repeat gets (a till retries when this reply is lost)
            _store_answer(conn, p, idempotency_key, status, doc)
    return JSONResponse(doc, status_code=status)


def _store_answer(conn: Connection, p: Principal, idempotency_key: str, status: int, doc: dict | None) -> None:
    conn.execute(
        text(
            "UPDATE platform.api_idempotency SET status_code = :s, response = CAST(:r AS jsonb) "
            "WHERE key_id = :k AND idempotency_key = :i"
        ),
        {"s": status, "r": None if doc is None else json.dumps(doc), "k": p.key_id, "i": idempotency_key},
    )


def _replay(conn: Connection, p: Principal, order_id: str, idempotency_key: str, request_hash: str) -> JSONResponse:
    """The stored answer of the first request with this key. It has none while its "send now" runs, nor when it
    died after the approval (before or after the send): the order as it is now is the answer then. Nothing is sent
    from here: the outbox sends an approved order once, however often the till asks."""
    row = conn.execute(
        text(
            "SELECT request_hash, status_code, response FROM platform.api_idempotency "
            "WHERE key_id = :k AND idempotency_key = :i"
        ),
        {"k": p.key_id, "i": idempotency_key},
    ).one()
    if row.request_hash != request_hash:
        raise PlatformError(422, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
    replayed = {"Idempotent-Replayed": "true"}
    if row.response is not None:
        return JSONResponse(row.response, status_code=row.status_code, headers=replayed)
    head = get_order(conn, p, order_id)
    if head is None:
        raise not_found()
    return JSONResponse(order_out(conn, head).model_dump(mode="json"), status_code=200, headers=replayed)


def _business_today(ctx: PlatformContext) -> dt.date:
    """The platform's 'today' for receipts: the one place to switch to ``replenish.clock`` when it lands."""
    return ctx.now().date()


def _business_date(sold_at: dt.datetime, today: dt.date, tz: ZoneInfo) -> dt.date:
    """The receipt's business date, or 422 when it is not within the receipt window around ``today``."""
    window = FieldError("/sold_at", f"business date must be from {today - dt.timedelta(days=RECEIPT_DAYS_BACK)} "
                                   f"to {today + dt.timedelta(days=RECEIPT_DAYS_AHEAD)} (today is {today})")
    # bounded before converting: astimezone overflows for the years 1 and 9999
    noon = dt.datetime.combine(today, dt.time(12), tz)
    if abs(sold_at - noon) > dt.timedelta(days=max(RECEIPT_DAYS_BACK, RECEIPT_DAYS_AHEAD) + 2):
        raise invalid([window])
    day = sold_at.astimezone(tz).date()
    if not today - dt.timedelta(days=RECEIPT_DAYS_BACK) <= day <= today + dt.timedelta(days=RECEIPT_DAYS_AHEAD):
        raise invalid([window])
    return day


@router.post(
    "/receipts",
    response_model=ReceiptOut,
    status_code=201,
    summary="Push a sales receipt from the till (idempotent per store and receipt_id)",
    responses={200: {"model": ReceiptOut, "description": "already received (same content)"}},
)
def post_receipt(request: Request, p: Terminal, body: ReceiptIn) -> JSONResponse:
    """Receipt ids are the store's: the same id from two stores are two receipts. A repeat from the same store is
    ``200 duplicate`` with the same content, ``409 receipt_conflict`` with other content."""
    store = p.stores[0]
    if body.store_id is not None and body.store_id != store:
        raise invalid([FieldError("/store_id", f"this API key belongs to store {store}")])
    ctx = request.app.state.ctx
    tz = ZoneInfo(ctx.settings.timezone)
    day = _business_date(body.sold_at, _business_today(ctx), tz)
    lines = [{"item_id": ln.item_id, "qty": str(ln.qty), "unit_price": str(ln.unit_price)} for ln in body.lines]
    total = sum((ln.qty * ln.unit_price for ln in body.lines), Decimal(0)).quantize(Decimal("0.01"))
    # ids hashed as text, as before they were integers: a receipt received before still compares equal on a repeat
    hashed = [{**ln, "item_id": str(ln["item_id"])} for ln in lines]
    digest = hashlib.sha256(
        json.dumps({"store": str(store), "sold_at": body.sold_at.isoformat(), "lines": hashed},
                   sort_keys=True).encode()
    ).hexdigest()
    with ctx.engine.begin() as conn:
        created = conn.execute(
            text(
                """INSERT INTO raw.pos_receipts (receipt_id, store_id, terminal, sold_at, business_date, total,
                    lines, payload_hash) VALUES (:r, :s, :t, :at, :d, :tot, CAST(:l AS jsonb), :h)
                ON CONFLICT (store_id, receipt_id) DO NOTHING RETURNING 1"""
            ),
            {
                "r": body.receipt_id,
                "s": store,
                "t": p.name,
                "at": body.sold_at,
                "d": day,
                "tot": total,
                "l": json.dumps(lines),
                "h": digest,
            },
        ).first()
        if created is None:
            prev = conn.execute(
                text("SELECT payload_hash, business_date, total FROM raw.pos_receipts "
                     "WHERE store_id = :s AND receipt_id = :r"),
                {"s": store, "r": body.receipt_id},
            ).one()
            if prev.payload_hash != digest:
                raise PlatformError(
                    409, "receipt_conflict", f"receipt {body.receipt_id} was already received with other content"
                )
            out = ReceiptOut(receipt_id=body.receipt_id, status="duplicate", business_date=prev.business_date,
                             total=prev.total)
            return JSONResponse(out.model_dump(mode="json"), status_code=200)
    out = ReceiptOut(receipt_id=body.receipt_id, status="created", business_date=day, total=total)
    return JSONResponse(out.model_dump(mode="json"), status_code=201)

"""Server-rendered pages: sign-in, review queue, order page (Jinja2 + vendored htmx with hx-boost).

Every form works without JavaScript (POST -> 303 redirect back with a notice). Failed changes re-render
the page with the messages and status 422 (validation), 409 (version conflict / locked order) or 404.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from replenish.orders.store import STATUSES
from replenish.platform import order_actions, order_queries
from replenish.platform.access import Principal
from replenish.platform.accounts import authenticate
from replenish.platform.charts import sales_svg
from replenish.platform.errors import FieldError, PlatformError, has_control_chars, not_found
from replenish.platform.ratelimit import account_key, account_wait, clear_failures, record_failure
from replenish.platform.sessions import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    create_session,
    end_session,
    new_token,
    same_token,
    session_user,
)

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)  # sign-in decisions (names with %r: a typed name cannot forge log lines)

NOTICES = {
    "saved": "Change saved.",
    "added": "Line added.",
    "removed": "Line removed.",
    "approved": "Order approved and queued for sending.",
    "rejected": "Order rejected.",
    "sent": "Sent to the supplier.",
    "queued": "Approved: it goes out with the next dispatch run.",
    "send_retry": "The supplier could not be reached: it is retried automatically (see the status below).",
    "send_failed": "Sending failed: see the error below, then use Retry.",
    "signed_out": "You are signed out.",
}
BAD_NOTICES = {"send_retry", "send_failed"}


class LoginRequired(Exception):
    pass


class WebSession:
    def __init__(self, principal: Principal, csrf: str) -> None:
        self.principal, self.csrf = principal, csrf


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


def current(request: Request) -> WebSession:
    ctx = _ctx(request)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with ctx.engine.begin() as conn:
            found = session_user(conn, token, idle_minutes=ctx.settings.session_idle_minutes)
        if found:
            return WebSession(Principal.of_user(found[0]), found[1])
    raise PlatformError(303, "login_required", "sign in first", headers={"Location": _login_url(request)})


def _login_url(request: Request) -> str:
    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?" + urlencode({"next": nxt}) if request.method == "GET" else "/login"


def checked(
    request: Request,
    csrf_token: Annotated[str, Form()] = "",
    x_csrf_token: Annotated[str | None, Header()] = None,
) -> WebSession:
    """The session of a state-changing request whose CSRF token (form field or header) matches."""
    s = current(request)
    if not (same_token(s.csrf, csrf_token) or same_token(s.csrf, x_csrf_token)):
        raise PlatformError(403, "csrf_failed", "the form expired or did not come from this site: reload the page")
    return s


Session = Annotated[WebSession, Depends(current)]
Checked = Annotated[WebSession, Depends(checked)]


def _cookie_secure(request: Request) -> bool:
    return bool(_ctx(request).settings.secure_cookies or request.url.scheme == "https")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    ctx = _ctx(request)
    context.setdefault("session", None)
    done = request.query_params.get("done", "")
    context.setdefault("notice", NOTICES.get(done))
    context.setdefault("notice_is_bad", done in BAD_NOTICES)
    context["now"] = ctx.now()
    return ctx.templates.TemplateResponse(request, template, context, status_code=status)


def render_error(request: Request, err: PlatformError) -> Response:
    if err.status == 303 and "Location" in err.headers:
        return RedirectResponse(err.headers["Location"], status_code=303)
    session = None
    try:
        session = current(request)
    except PlatformError:
        pass
    return render(request, "error.html.j2", err.status, error=err, session=session)


def _safe_next(nxt: str | None) -> str:
    """Where to go after sign-in: the queue or an order page of this site (no open redirect, no other route)."""
    if (
        not nxt
        or len(nxt) > 2000
        or has_control_chars(nxt)
        or not nxt.startswith("/")
        or nxt.startswith("//")
        or "\\" in nxt
    ):
        return "/queue"
    parts = urlsplit(nxt)
    if parts.scheme or parts.netloc:
        return "/queue"
    if not (parts.path == "/queue" or (parts.path.startswith("/orders/") and "/" not in parts.path[8:])):
        return "/queue"  # only back to the pages a sign-in interrupts: the queue or an order
    return nxt


# ----------------------------------------------------------------------------------------------- sign-in
@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:  # noqa: A002 - the query name
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
    resp = render(request, "login.html.j2", login_csrf=token, next=_safe_next(next), error=None)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_cookie_secure(request),
                    max_age=3600)
    return resp


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    username: Annotated[str, Form(max_length=150)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form(max_length=2000)] = "/queue",  # noqa: A002
) -> Response:
    ctx = _ctx(request)
    nxt = _safe_next(next)
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not same_token(cookie_token, csrf_token):
        raise PlatformError(403, "csrf_failed", "the sign-in form expired: reload the page and try again")
    # request.client is the peer, or the client a trusted proxy forwarded for (REPLENISH_TRUSTED_PROXIES)
    ip = request.client.host if request.client else "?"
    account = account_key(username)
    wait = max(
        ctx.login_limiter.take(f"login:{ip}:{account}"),
        ctx.login_limiter.take(f"login-ip:{ip}", cost=0.2),  # per IP: 5x the per-user budget
    )
    if wait:
        log.warning("sign-in refused: too many attempts from %s (account %r)", ip, account)
        return _too_many(request, wait, cookie_token, nxt, username)
    s = ctx.settings
    with ctx.engine.begin() as conn:
        # per account, whatever the address: a backoff after repeated failures (row locked till commit)
        wait = account_wait(conn, account)
        if wait:
            log.warning("sign-in refused: account %r backs off %.0f s more (from %s)", account, wait, ip)
            return _too_many(request, wait, cookie_token, nxt, username)
        user = authenticate(conn, username.strip(), password)
        if user is None:
            backoff = record_failure(conn, account, free_failures=s.login_failures_before_backoff,
                                     max_seconds=s.login_backoff_max_seconds)
            log.warning("sign-in failed: account %r from %s%s", account, ip,
                        f"; it now waits {backoff:.0f} s" if backoff else "")
            return render(request, "login.html.j2", 401, login_csrf=cookie_token, next=nxt, username=username,
                          error="Wrong username or password.")
        clear_failures(conn, account)
        end_session(conn, request.cookies.get(SESSION_COOKIE))  # a new session id at sign-in, the old one dies
        token, _csrf = create_session(conn, user, s.session_hours)
    ctx.login_limiter.reset(f"login:{ip}:{account}")
    log.info("signed in: %r from %s", user.username, ip)
    resp = RedirectResponse(nxt, status_code=303)
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=_cookie_secure(request),
                    max_age=s.session_hours * 3600, path="/")
    resp.delete_cookie(LOGIN_CSRF_COOKIE)
    return resp


def _too_many(request: Request, wait: float, csrf: str | None, nxt: str, username: str) -> Response:
    seconds = int(wait) + 1
    resp = render(request, "login.html.j2", 429, login_csrf=csrf, next=nxt, username=username,
                  error=f"Too many sign-in attempts. Try again in {seconds} seconds.")
    resp.headers["Retry-After"] = str(seconds)
    return resp


@router.post("/logout")
def logout(request: Request, s: Checked) -> Response:
    with _ctx(request).engine.begin() as conn:
        end_session(conn, request.cookies.get(SESSION_COOKIE))
    log.info("signed out: %r", s.principal.name)
    resp = RedirectResponse("/login?done=signed_out", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/")
def home() -> Response:
    return RedirectResponse("/queue", status_code=303)


# ------------------------------------------------------------------------------------------ review queue
def _cutoff_text(cutoff: dt.datetime | None, now: dt.datetime) -> str:
    if cutoff is None:
        return "no cutoff"
    secs = int((cutoff - now).total_seconds())
    if secs <= 0:
        return "cutoff passed"
    d, rest = divmod(secs, 86400)
    h, m = rest // 3600, rest % 3600 // 60
    return (f"{d}d {h}h" if d else f"{h}h {m:02d}m" if h else f"{m}m") + " left"


@router.get("/queue", response_class=HTMLResponse)
def queue(
    request: Request,
    s: Session,
    status: Annotated[str, Query(max_length=20)] = "open",
    delivery_date: Annotated[str, Query(max_length=10)] = "",
    store_id: Annotated[str, Query(max_length=64)] = "",
    supplier_id: Annotated[str, Query(max_length=64)] = "",
    reason: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    ctx = _ctx(request)
    errors: list[str] = []
    day = None
    if delivery_date:
        try:
            day = dt.date.fromisoformat(delivery_date)
        except ValueError:
            errors.append(f"delivery date: expected YYYY-MM-DD, got {delivery_date!r}")
    for name, value in (("store_id", store_id), ("supplier_id", supplier_id), ("reason", reason)):
        if has_control_chars(value):
            errors.append(f"{name}: control characters are not allowed")
    if errors:
        store_id = supplier_id = reason = ""
    if status not in ("open", "all", *STATUSES):
        errors.append(f"status: unknown value {status!r}")
        status = "open"
    f = order_queries.QueueFilter(status, day, store_id or None, supplier_id or None, reason or None)
    with ctx.engine.connect() as conn:
        rows = order_queries.review_queue(conn, s.principal, f)
        now = ctx.now()
        facets = order_queries.queue_facets(conn, s.principal, since=now.date() - dt.timedelta(days=14))
        nm = order_queries.names(conn)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        # a countdown only while a person can still act on the order
        is_open = r["status"] in ("proposed", "in_review")
        r["cutoff_text"] = _cutoff_text(r["cutoff_at"], now) if is_open else ""
        r["cutoff_soon"] = (is_open and r["cutoff_at"] is not None
                            and 0 < (r["cutoff_at"] - now).total_seconds() < 3 * 3600)
        r["counts_down"] = is_open and r["cutoff_at"] is not None
        groups.setdefault((r["delivery_date"], r["store_id"], r["supplier_id"]), []).append(r)
    return render(
        request,
        "queue.html.j2",
        422 if errors else 200,
        session=s,
        groups=groups,
        count=len(rows),
        facets=facets,
        names=nm,
        filters={"status": status, "delivery_date": delivery_date, "store_id": store_id,
                 "supplier_id": supplier_id, "reason": reason},
        statuses=STATUSES,
        errors=errors,
        open_statuses=("proposed", "in_review"),
    )


@router.post("/queue/approve", response_class=HTMLResponse)
def bulk_approve(request: Request, s: Checked, order: Annotated[list[str] | None, Form()] = None) -> Response:
    """Approve every ticked order (``order`` = "<order_id>@<version>"), each in its own transaction."""
    ctx = _ctx(request)
    done, failed = [], []
    for value in (order or [])[:500]:
        oid, _, ver = value.rpartition("@")
        try:
            version = int(ver)
        except ValueError:
            failed.append((value, "malformed selection"))
            continue
        try:
            with ctx.engine.begin() as conn:
                order_actions.approve(conn, s.principal, oid, version)
            done.append(oid)
        except PlatformError as e:
            failed.append((oid, e.message))
    status = 200 if not failed else 409
    return render(request, "bulk_result.html.j2", status, session=s, done=done, failed=failed)


# ------------------------------------------------------------------------------------------- order page
def _order_page(
    request: Request,
    s: WebSession,
    order_id: str,
    *,
    status: int = 200,
    error: PlatformError | None = None,
    form: dict | None = None,
) -> HTMLResponse:
    ctx = _ctx(request)
    with ctx.engine.connect() as conn:
        head = order_queries.get_order(conn, s.principal, order_id)
        if head is None:
            raise not_found()
        lines = order_queries.order_lines(conn, order_id)
        rules = order_queries.item_rules(conn, head, lines)
        items = [str(ln["item_id"]) for ln in lines]
        origin = head["order_date"]
        sales = order_queries.sales_history(conn, head["store_id"], items, origin)
        band = order_queries.forecast_band(
            conn, head["store_id"], items, origin, head.get("next_delivery_date") or head["delivery_date"]
        )
        audit = order_queries.audit_trail(conn, order_id)
        box = order_queries.outbox_state(conn, order_id)
        nm = order_queries.names(conn)
        addable = order_queries.supplier_items(conn, head)
    for ln in lines:
        iid = str(ln["item_id"])
        ln["rule"] = rules.get(iid, order_queries.ItemRule())
        ln["chart"] = sales_svg(sales.get(iid, []), band.get(iid, []), label=iid)
        ln["why"] = (ln["explanation"] or {}).get("why") or ""
    field_errors: dict[str, str] = {}
    if error is not None:
        for fe in error.fields:
            field_errors.setdefault(fe.field, fe.message)
    open_ = head["status"] in ("proposed", "in_review")
    return render(
        request,
        "order.html.j2",
        status,
        session=s,
        head=head,
        lines=lines,
        audit=audit,
        outbox=box,
        names=nm,
        is_open=open_,
        can_send=open_ or head["status"] in ("approved", "auto_approved", "queued", "retry"),
        edit_reasons=order_actions.EDIT_REASONS,
        reject_reasons=order_actions.REJECT_REASONS,
        addable=[i for i in (addable or []) if i not in items] if addable is not None else None,
        cutoff_text=_cutoff_text(head["cutoff_at"], ctx.now()) if open_ else "",
        error=error,
        field_errors=field_errors,
        form=form or {},
    )


@router.get("/orders/{order_id}", response_class=HTMLResponse)
def order_page(request: Request, s: Session, order_id: str) -> HTMLResponse:
    return _order_page(request, s, order_id)


def _mutate(request: Request, s: WebSession, order_id: str, done: str, fn, form: dict) -> Response:
    try:
        with _ctx(request).engine.begin() as conn:
            fn(conn)
    except PlatformError as e:
        if e.status == 404:
            raise
        page = _order_page(request, s, order_id, status=e.status, error=e, form=form)
        page.headers["HX-Replace-Url"] = f"/orders/{quote(order_id, safe='')}"  # a reload then GETs the order again
        return page
    return RedirectResponse(f"/orders/{quote(order_id, safe='')}?done={done}", status_code=303)


def _version(raw: str) -> int | None:
    try:
        return int(raw)
    except ValueError:
        raise PlatformError(422, "validation_error", "version: missing or not a number (reload the page)",
                            [FieldError("version", "missing or not a number")]) from None


@router.post("/orders/{order_id}/lines/{item_id}", response_class=HTMLResponse)
def edit_qty(
    request: Request,
    s: Checked,
    order_id: str,
    item_id: str,
    qty: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=64)] = "",
    version: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    change = order_actions.LineChange(item_id, "set", order_actions.parse_qty(qty), reason)  # type: ignore[arg-type]
    form = {"item_id": item_id, "qty": qty, "reason": reason}
    return _mutate(request, s, order_id, "saved",
                   lambda c: order_actions.change_lines(c, s.principal, order_id, [change], _version(version)), form)


@router.post("/orders/{order_id}/lines/{item_id}/remove", response_class=HTMLResponse)
def remove_line(
    request: Request,
    s: Checked,
    order_id: str,
    item_id: str,
    reason: Annotated[str, Form(max_length=64)] = "",
    version: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    change = order_actions.LineChange(item_id, "remove", None, reason)
    form = {"item_id": item_id, "reason": reason, "remove": True}
    return _mutate(request, s, order_id, "removed",
                   lambda c: order_actions.change_lines(c, s.principal, order_id, [change], _version(version)), form)


@router.post("/orders/{order_id}/lines", response_class=HTMLResponse)
def add_line(
    request: Request,
    s: Checked,
    order_id: str,
    item_id: Annotated[str, Form(max_length=64)] = "",
    qty: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=64)] = "",
    version: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    qty_in = order_actions.parse_qty(qty)
    change = order_actions.LineChange(_item_by_name(request, item_id.strip()), "add", qty_in, reason)  # type: ignore[arg-type]
    form = {"item_id": item_id, "qty": qty, "reason": reason, "add": True}
    return _mutate(request, s, order_id, "added",
                   lambda c: order_actions.change_lines(c, s.principal, order_id, [change], _version(version)), form)


def _item_by_name(request: Request, typed: str) -> str:
    """The add-line search field takes an item number or its exact name (any case)."""
    with _ctx(request).engine.connect() as conn:
        items = order_queries.names(conn).get("item", {})
    if typed in items:
        return typed
    found = [i for i, n in items.items() if n.casefold() == typed.casefold()]
    return found[0] if len(found) == 1 else typed


@router.post("/orders/{order_id}/approve", response_class=HTMLResponse)
def approve(
    request: Request, s: Checked, order_id: str, version: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    return _mutate(request, s, order_id, "approved",
                   lambda c: order_actions.approve(c, s.principal, order_id, _version(version)), {})


@router.post("/orders/{order_id}/reject", response_class=HTMLResponse)
def reject(
    request: Request,
    s: Checked,
    order_id: str,
    reason: Annotated[str, Form(max_length=64)] = "",
    version: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    return _mutate(request, s, order_id, "rejected",
                   lambda c: order_actions.reject(c, s.principal, order_id, _version(version), reason),
                   {"reject_reason": reason})


@router.post("/orders/{order_id}/send", response_class=HTMLResponse)
def send_now(
    request: Request, s: Checked, order_id: str, version: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    """Approve if still open (one transaction with the outbox message), then run the dispatcher now."""

    def run(conn) -> None:
        head = order_actions.lock_order(conn, s.principal, order_id, _version(version))
        if head["status"] in ("proposed", "in_review"):
            order_actions.approve(conn, s.principal, order_id, None)
        elif head["status"] not in ("approved", "auto_approved", "queued", "retry"):
            raise PlatformError(409, "order_locked", f"order {order_id} is {head['status']}: nothing to send")

    resp = _mutate(request, s, order_id, "sent", run, {})
    if resp.status_code == 303:
        resp = _after_send(request, order_id)
    return resp


@router.post("/orders/{order_id}/retry", response_class=HTMLResponse)
def retry_send(
    request: Request, s: Checked, order_id: str, version: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    """Send a dead-lettered order again, now."""
    resp = _mutate(request, s, order_id, "sent",
                   lambda c: order_actions.retry(c, s.principal, order_id, _version(version)), {})
    if resp.status_code == 303:
        resp = _after_send(request, order_id)
    return resp


def _after_send(request: Request, order_id: str) -> Response:
    """Run the dispatcher for this order only, then tell what really happened (sent, will retry, failed)."""
    ctx = _ctx(request)
    ctx.dispatch([order_id])
    with ctx.engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM orders.purchase_orders WHERE order_id = :o"),
                              {"o": order_id}).scalar()
    done = {"sent": "sent", "acknowledged": "sent", "retry": "send_retry", "dead_letter": "send_failed"}.get(
        str(status), "queued")
    return RedirectResponse(f"/orders/{quote(order_id, safe='')}?done={done}", status_code=303)

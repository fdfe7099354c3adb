"""Server-rendered pages: sign-in, review queue, order page (Jinja2 + vendored htmx with hx-boost).

Every form works without JavaScript (POST -> 303 redirect back with a notice). Failed changes re-render
the page with the messages and status 422 (validation), 409 (version conflict / locked order) or 404.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from replenish import clock, display_names
from replenish.ids import parse_id
from replenish.orders.order_tables import STATUSES
from replenish.platform import order_actions, order_queries
from replenish.platform.access import Principal
from replenish.platform.accounts import authenticate
from replenish.platform.charts import sales_svg
from replenish.platform.errors import FieldError, PlatformError, has_control_chars, not_found
from replenish.platform.explain import why_steps
from replenish.platform.labels import EDIT_REASON_LABELS, actor_label, event_words, reason_label, status_label
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
    "unchanged": "Nothing changed: every quantity is as it was.",
    "rejected": "Order rejected.",
    "sent": "Sent to the supplier.",
    "kept_on_disk": "Not e-mailed: no SendGrid key is configured, so the order mail was kept in the outbox folder. "
                    "The supplier has not got it: send it another way, or ask for the key to be set.",
    "queued": "Approved: it goes out with the next dispatch run.",
    "send_retry": "The supplier could not be reached: it is retried automatically (see the status below).",
    "send_failed": "Sending failed: see the error below, then use Retry.",
    "send_expired": "Not sent: its delivery date has passed, so the order was cancelled.",
    "send_error": "Approved, but sending it now failed (the error is logged on the server): it goes out with the "
                  "next dispatch run, or try Send now again.",
    "signed_out": "You are signed out.",
    "session_ended": "Your session ended (unused for a while, or signed out on another device): sign in again.",
    "not_saved": "Not saved: your session had ended before your change arrived. Enter it again.",
}
BAD_NOTICES = {"send_retry", "send_failed", "send_expired", "send_error", "kept_on_disk", "session_ended",
               "not_saved"}
DISPATCH_IDLE_AFTER = dt.timedelta(minutes=15)   # three of the dispatch's 5-minute runs missed


AIRFLOW_PAGES = "/airflow/"  # the Airflow UI's DAG run tabs (platform.airflow_views), the only framable pages


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


_ORDER_ACTION = re.compile(r"/orders/([^/]+)(?:/.*)?")


def page_of(path: str) -> str | None:
    """The page a form's address belongs to: an order's actions to the order, the bulk approval to the queue. The
    address bar keeps a form's address (the bulk confirmation's, a failed change's without htmx); opened again
    from there or the history, it is a GET the form's route does not take."""
    if (m := _ORDER_ACTION.fullmatch(path)) and not path.endswith(".csv"):
        return f"/orders/{quote(m.group(1), safe='')}"
    return "/queue" if path.startswith("/queue/") else None


def _login_url(request: Request) -> str:
    """The sign-in page, then back to the page the person was on. A form sent after the session ended (idle,
    signed out elsewhere) was not saved: the sign-in page says the session ended, and the order page it leads back
    to that the change must be entered again (what was typed cannot be kept: nothing of it is trusted unsigned)."""
    ended = bool(request.cookies.get(SESSION_COOKIE))
    path = request.url.path
    if request.method == "GET":
        nxt = path + (f"?{request.url.query}" if request.url.query else "")
    elif path == "/logout":
        return "/login?done=signed_out"
    else:
        page = page_of(path)
        nxt = f"{page}?done=not_saved" if page else ""
    params = {"next": nxt} if nxt else {}
    if ended:
        params["done"] = "session_ended"
    return "/login" + (f"?{urlencode(params)}" if params else "")


def checked(
    request: Request,
    csrf_token: Annotated[str, Form()] = "",
    x_csrf_token: Annotated[str | None, Header()] = None,
) -> WebSession:
    """The session of a state-changing request whose CSRF token (form field or header) matches."""
    s = current(request)
    if not (same_token(s.csrf, csrf_token) or same_token(s.csrf, x_csrf_token)):
        # in practice a page opened before the last sign-in (each sign-in has a new token): nothing is lost but what
        # was typed, and the error page leads back to that page (a forged form from another site gets the same)
        if request.url.path == "/logout":
            raise PlatformError(403, "csrf_failed", "You are still signed in: this page was opened before your last "
                                                    "sign-in. Reload it and sign out again.")
        raise PlatformError(403, "csrf_failed", "Nothing was saved: this page was opened before your last sign-in. "
                                                "Open it again from the link below and repeat your change.")
    return s


Session = Annotated[WebSession, Depends(current)]
Checked = Annotated[WebSession, Depends(checked)]
# the order page's form fields, as long as any valid value can be (a longer one is a 422 before the handler)
VersionField = Annotated[str, Form(max_length=20)]  # the order version the page showed
QtyField = Annotated[str, Form(max_length=20)]
ReasonField = Annotated[str, Form(max_length=64)]


def _cookie_secure(request: Request) -> bool:
    return bool(_ctx(request).settings.secure_cookies or request.url.scheme == "https")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    ctx = _ctx(request)
    context.setdefault("session", None)
    done = request.query_params.get("done", "")
    context.setdefault("notice", NOTICES.get(done))
    context.setdefault("notice_is_bad", done in BAD_NOTICES)
    context["now"] = ctx.now()
    if request.url.path.startswith(AIRFLOW_PAGES) or str(context.get("next") or "").startswith(AIRFLOW_PAGES):
        # a run tab of the Airflow UI, or the sign-in interrupting one: the security headers let that UI frame it
        request.state.airflow_frame = True
        context["framed"] = True
    return ctx.templates.TemplateResponse(request, template, context, status_code=status)


def render_error(request: Request, err: PlatformError) -> Response:
    if err.status == 303 and "Location" in err.headers:
        return RedirectResponse(err.headers["Location"], status_code=303)
    session = None
    try:
        session = current(request)
    except PlatformError:
        pass
    # back to the order a failed action was for (a 404 would only repeat itself there)
    back = (page_of(request.url.path) if err.status != 404 else None) or "/queue"
    return render(request, "error.html.j2", err.status, error=err, session=session, back=back)


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
    if not (parts.path in ("/queue", "/reports", "/service")
            or (parts.path.startswith("/orders/") and "/" not in parts.path[8:])
            or re.fullmatch(r"/reports/forecast_\d{4}-\d{2}-\d{2}\.html", parts.path)
            or re.fullmatch(r"/data-docs/[A-Za-z0-9_./-]{0,300}", parts.path) and ".." not in parts.path
            or parts.path in ("/airflow/forecast-report", "/airflow/data-docs")
            or re.fullmatch(r"/airflow/data-docs/[A-Za-z0-9_./-]{0,300}", parts.path) and ".." not in parts.path):
        return "/queue"  # only back to the pages a sign-in interrupts: the queue, an order, a report, Data Docs,
        # the stock-outs page, the Airflow UI's run tabs
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


SORTS = ("cutoff", "delivery", "store", "supplier", "value", "lines", "status")


QueueStatus = Annotated[str, Query(max_length=20)]
QueueText = Annotated[str, Query(max_length=64)]


@dataclass(frozen=True)
class QueueParams:
    """The review queue's filters and sort order as the query string gives them (the page and its CSV share them)."""

    status: str
    delivery_date: str
    store_id: str
    supplier_id: str
    reason: str
    sort: str
    direction: str


def queue_params(
    status: QueueStatus = "open",
    delivery_date: Annotated[str, Query(max_length=10)] = "",
    store_id: QueueText = "",
    supplier_id: QueueText = "",
    reason: QueueText = "",
    sort: QueueStatus = "cutoff",
    dir: QueueStatus = "asc",  # noqa: A002 - the query name
) -> QueueParams:
    return QueueParams(status, delivery_date, store_id, supplier_id, reason, sort, dir)


Queue = Annotated[QueueParams, Depends(queue_params)]


def _queue_rows(request: Request, s: WebSession, q: QueueParams) -> tuple[list[dict], dict, dict, list[str], dict]:
    """The queue's rows (filtered, in words, sorted), the filter facets, the names, errors and the filters."""
    ctx = _ctx(request)
    status, delivery_date, store_id, supplier_id = q.status, q.delivery_date, q.store_id, q.supplier_id
    reason, sort, direction = q.reason, q.sort, q.direction
    errors: list[str] = []
    day = None
    if delivery_date:
        try:
            day = dt.date.fromisoformat(delivery_date)
        except ValueError:
            errors.append(f"delivery date: expected YYYY-MM-DD, got {delivery_date!r}")
    if has_control_chars(reason):
        errors.append("reason: control characters are not allowed")
    store, supplier = parse_id(store_id), parse_id(supplier_id)
    for name, raw, value in (("store", store_id, store), ("supplier", supplier_id, supplier)):
        if raw and value is None:
            errors.append(f"{name}: expected a {name} number")
    if errors:
        store_id = supplier_id = reason = ""
        store = supplier = None
    if status not in ("open", "all", *STATUSES):
        errors.append(f"status: unknown value {status!r}")
        status = "open"
    if sort not in SORTS:
        sort = "cutoff"
    direction = "desc" if direction == "desc" else "asc"
    f = order_queries.QueueFilter(status, day, store, supplier, reason or None)
    with ctx.engine.connect() as conn:
        rows = order_queries.review_queue(conn, s.principal, f)
        now = ctx.now()
        facets = order_queries.queue_facets(conn, s.principal, since=now.date() - dt.timedelta(days=14))
        nm = display_names.names(conn)
    nk = order_queries.natural_key
    tz = _tz(request)
    facets["stores"] = sorted(facets["stores"], key=lambda v: nk(nm["store"].get(v, v)))
    facets["suppliers"] = sorted(facets["suppliers"], key=lambda v: nk(nm["supplier"].get(v, v)))
    for r in rows:
        # a countdown only while a person can still act on the order
        is_open = r["status"] in ("proposed", "in_review")
        r["is_open"] = is_open
        r["cutoff_text"] = _cutoff_text(r["cutoff_at"], now) if is_open else ""
        r["cutoff_soon"] = (is_open and r["cutoff_at"] is not None
                            and 0 < (r["cutoff_at"] - now).total_seconds() < 3 * 3600)
        r["counts_down"] = is_open and r["cutoff_at"] is not None
        r["cutoff_local"] = r["cutoff_at"].astimezone(tz) if r["cutoff_at"] else None
        r["store_name"] = nm["store"].get(r["store_id"], f"Store {r['store_id']}")
        r["supplier_name"] = nm["supplier"].get(r["supplier_id"], f"Supplier {r['supplier_id']}")
        r["reason_words"] = [reason_label(c, nm["item"]) for c in r["reasons"] or []]
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    keys = {
        "cutoff": lambda r: (r["cutoff_at"] if r["is_open"] and r["cutoff_at"] else far, nk(r["store_name"])),
        "delivery": lambda r: (r["delivery_date"], nk(r["store_name"]), nk(r["supplier_name"])),
        "store": lambda r: (nk(r["store_name"]), nk(r["supplier_name"]), r["delivery_date"]),
        "supplier": lambda r: (nk(r["supplier_name"]), nk(r["store_name"]), r["delivery_date"]),
        "value": lambda r: (float(r["order_value"] or 0), nk(r["store_name"])),
        "lines": lambda r: (int(r["line_count"] or 0), nk(r["store_name"])),
        "status": lambda r: (str(r["status"]), nk(r["store_name"])),
    }
    rows.sort(key=keys[sort], reverse=direction == "desc")
    filters = {"status": status, "delivery_date": delivery_date, "store_id": store_id, "supplier_id": supplier_id,
               "reason": reason, "sort": sort, "dir": direction}
    return rows, facets, nm, errors, filters


@router.get("/queue", response_class=HTMLResponse)
def queue(request: Request, s: Session, q: Queue) -> HTMLResponse:
    rows, facets, nm, errors, filters = _queue_rows(request, s, q)
    base = {k: v for k, v in filters.items() if v and k not in ("sort", "dir")}

    def sort_url(col: str) -> str:
        flip = "desc" if filters["sort"] == col and filters["dir"] == "asc" else "asc"
        return "/queue?" + urlencode({**base, "sort": col, "dir": flip})

    return render(
        request,
        "queue.html.j2",
        422 if errors else 200,
        session=s,
        rows=rows,
        count=len(rows),
        open_count=sum(1 for r in rows if r["is_open"]),
        facets=facets,
        names=nm,
        filters=filters,
        active_filters=sum(1 for k in ("delivery_date", "store_id", "supplier_id", "reason") if filters[k])
        + (filters["status"] != "open"),
        statuses=STATUSES,
        errors=errors,
        sort_url=sort_url,
        csv_url="/queue.csv?" + urlencode(base),
        bulk_error=None,
        tz_name=_ctx(request).settings.timezone,
    )


_CSV_RISKY = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: names from the exports could start a formula (=HYPERLINK...). Blanks
    before it count too: LibreOffice's CSV import trims them when asked to, and then evaluates what follows."""
    text_ = "" if value is None else str(value)
    return "'" + text_ if text_.startswith(_CSV_RISKY) or text_.lstrip().startswith(_CSV_RISKY) else text_


def _csv_response(rows: list[list[object]], filename: str) -> Response:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for row in rows:
        w.writerow([csv_cell(c) for c in row])
    return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/queue.csv")
def queue_csv(request: Request, s: Session, q: Queue) -> Response:
    """The queue as filtered and sorted on screen, one order per row (Excel and LibreOffice read it as is)."""
    rows, _facets, _nm, errors, _filters = _queue_rows(request, s, q)
    if errors:
        raise PlatformError(422, "validation_error", "; ".join(errors))
    tz = _tz(request)
    out: list[list[object]] = [["order_id", "store_id", "store", "supplier_id", "supplier", "delivery_date", "status",
                                "lines", "order_value_eur", "cutoff_local", "why_in_review", "reason_codes"]]
    for r in rows:
        out.append([r["order_id"], r["store_id"], r["store_name"], r["supplier_id"], r["supplier_name"],
                    r["delivery_date"].isoformat(), status_label(r["status"]), r["line_count"],
                    "" if r["order_value"] is None else f"{float(r['order_value']):.2f}",
                    r["cutoff_at"].astimezone(tz).strftime("%Y-%m-%d %H:%M") if r["cutoff_at"] else "",
                    "; ".join(r["reason_words"]), " ".join(r["reasons"] or [])])
    return _csv_response(out, "review-queue.csv")


BULK_CONFLICT = ("changed by someone else after the queue was shown, so not approved unseen: open it, check the "
                 "change and approve it there")


def _selected(request: Request, s: WebSession, order: list[str] | None) -> list[dict]:
    """The ticked orders (``order`` = "<order_id>@<version>") as the person may see them, in words."""
    ctx = _ctx(request)
    picked: list[dict] = []
    with ctx.engine.connect() as conn:
        nm = display_names.names(conn)
        for value in dict.fromkeys(order or []):
            if len(picked) >= 500:
                break
            oid, _, ver = value.rpartition("@")
            entry: dict[str, Any] = {"value": value, "order_id": oid or value, "version": ver, "head": None}
            head = order_queries.get_order(conn, s.principal, oid) if oid and ver.isdigit() else None
            if head is not None:
                entry["head"] = head
                entry["store_name"] = nm["store"].get(head["store_id"], f"Store {head['store_id']}")
                entry["supplier_name"] = nm["supplier"].get(head["supplier_id"], f"Supplier {head['supplier_id']}")
                entry["lines"] = conn.execute(
                    text("SELECT count(*) FROM orders.order_lines WHERE order_id = :o AND final_qty > 0"), {"o": oid}
                ).scalar()
            picked.append(entry)
    return picked


@router.post("/queue/approve", response_class=HTMLResponse)
def bulk_approve(
    request: Request,
    s: Checked,
    order: Annotated[list[str] | None, Form()] = None,
    confirmed: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Approve every ticked order, each in its own transaction, after a confirmation page that names them."""
    ctx = _ctx(request)
    picked = _selected(request, s, order)
    if not picked:
        return render(request, "bulk_confirm.html.j2", 422, session=s, picked=[], total=0,
                      error="No order selected: tick the orders to approve (or \u201cselect all\u201d) first.")
    if confirmed != "1":
        total = sum(float(p["head"]["order_value"] or 0) for p in picked if p["head"])
        return render(request, "bulk_confirm.html.j2", session=s, picked=picked, total=total, error=None)
    done, failed = [], []
    for p in picked:
        if p["head"] is None:
            failed.append((p, "not found, or not an order you may approve" if p["version"].isdigit()
                           else "malformed selection"))
            continue
        try:
            with ctx.engine.begin() as conn:
                order_actions.approve(conn, s.principal, p["order_id"], int(p["version"]))
            done.append(p)
        except PlatformError as e:
            # "apply your change again" is the order page's advice: here nobody changed anything, they ticked it
            failed.append((p, BULK_CONFLICT if e.code == "version_conflict" else e.message))
    status = 200 if not failed else 409
    return render(request, "bulk_result.html.j2", status, session=s, done=done, failed=failed)


# ------------------------------------------------------------------------------------------- order page
def _tz(request: Request) -> ZoneInfo:
    return ZoneInfo(_ctx(request).settings.timezone)


def _order_data(conn: Any, s: WebSession, order_id: str) -> tuple[dict, list[dict], dict]:
    head = order_queries.get_order(conn, s.principal, order_id)
    if head is None:
        raise not_found()
    lines = order_queries.order_lines(conn, order_id)
    nm = display_names.names(conn)
    rules = order_queries.item_rules(conn, head, lines)
    prices = order_queries.line_prices(conn, head, lines)
    for ln in lines:
        iid = ln["item_id"]
        ln["name"] = nm["item"].get(iid, f"Item {iid}")
        ln["rule"] = rules.get(iid, order_queries.ItemRule())
        ln["unit_price"] = prices.get(iid)
        ln["line_value"] = None if ln["unit_price"] is None else round(ln["final_qty"] * ln["unit_price"], 2)
    return head, lines, nm


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
        head, lines, nm = _order_data(conn, s, order_id)
        items = [ln["item_id"] for ln in lines]
        origin = head["order_date"]
        cover_end = head.get("next_delivery_date") or head["delivery_date"] + dt.timedelta(days=1)
        last_covered = max(head["delivery_date"], cover_end - dt.timedelta(days=1))
        sales = order_queries.sales_history(conn, head["store_id"], items, origin)
        # the forecast the night made (origin: the business day before the order date), up to the window's end
        band = order_queries.forecast_band(conn, head["store_id"], items, origin - dt.timedelta(days=1),
                                           last_covered)
        past = order_queries.past_orders(conn, head["store_id"], items, origin - dt.timedelta(days=27),
                                         last_covered, exclude_order=order_id)
        audit = order_queries.audit_trail(conn, order_id)
        box = order_queries.outbox_state(conn, order_id)
        waiting = box is not None and box["status"] in ("pending", "retry")
        last_dispatch = order_queries.last_dispatch_at(conn) if waiting else None
        addable = order_queries.supplier_items(conn, head)
    for ln in lines:
        iid = ln["item_id"]
        win = (head["delivery_date"], last_covered)
        ln["chart"] = sales_svg(sales.get(iid, []), band.get(iid, []), label=ln["name"], orders=past.get(iid, []),
                                window=win, css_class="chart-wide")
        recent = origin - dt.timedelta(days=13)  # a phone shows two weeks, drawn narrow so its text stays readable
        ln["chart_phone"] = sales_svg(
            [x for x in sales.get(iid, []) if x[0] >= recent], band.get(iid, []), label=ln["name"],
            orders=[x for x in past.get(iid, []) if x[0] >= recent], window=win, width=360, css_class="chart-narrow",
        ) if sales.get(iid) or band.get(iid) else ""  # without data the wide one's sentence says it once
        # the reason a person gave stays chosen after the save (a release cap's code is no reason of theirs)
        person = ln["edited_by"] and not str(ln["edited_by"]).startswith("release:")
        ln["saved_reason"] = ln["edit_reason"] if person and ln["edit_reason"] in order_actions.EDIT_REASONS else ""
        ln["why_summary"], ln["why_steps"] = why_steps(
            ln["explanation"], proposed_qty=int(ln["proposed_qty"]), final_qty=int(ln["final_qty"]),
            edited_by=ln["edited_by"], edit_reason=ln["edit_reason"])
    conflict = (_conflict_changes(head["status"], lines, audit, form, nm["item"])
                if error is not None and error.code == "version_conflict" and form is not None else None)
    field_errors: dict[str, list[str]] = {}
    general_errors: list[str] = []
    if error is not None:
        for fe in error.fields:
            key = (form or {}).get("field_items", {}).get(fe.field, fe.field)
            field_errors.setdefault(key, []).append(fe.message)
        if not error.fields:
            general_errors.append(error.message)
    open_ = head["status"] in ("proposed", "in_review")
    tz = _tz(request)
    if box and box["sent_at"]:
        box["sent_local"] = box["sent_at"].astimezone(tz)
    for e in audit:
        e["words"] = event_words(e["event"], e["from_value"], e["to_value"], nm["item"])
        e["who"] = actor_label(e["actor"])
        e["local"] = e["at"].astimezone(tz)
    # An approved order goes out with the frequent dispatch: where that has not run lately (Airflow's scheduler off,
    # the DAG paused), "queued" would wait for good without a word
    dispatch_wait = None if not waiting else {
        "last": last_dispatch.astimezone(tz) if last_dispatch else None,
        "idle": last_dispatch is None or clock.wall_now() - last_dispatch > DISPATCH_IDLE_AFTER}
    value = sum(ln["line_value"] or 0 for ln in lines) if any(ln["line_value"] is not None for ln in lines) else None
    return render(
        request,
        "order.html.j2",
        status,
        session=s,
        head=head,
        lines=lines,
        audit=audit,
        outbox=box,
        dispatch_wait=dispatch_wait,
        names=nm,
        is_open=open_,
        can_send=open_ or head["status"] in ("approved", "auto_approved", "queued", "retry"),
        edit_reasons=order_actions.EDIT_REASONS,
        reject_reasons=order_actions.REJECT_REASONS,
        addable=[i for i in (addable or []) if i not in items] if addable is not None else None,
        cutoff_text=_cutoff_text(head["cutoff_at"], ctx.now()) if open_ else "",
        cutoff_local=head["cutoff_at"].astimezone(tz) if head["cutoff_at"] else None,
        error=error,
        conflict=conflict,
        field_errors=field_errors,
        general_errors=general_errors,
        form=form or {},
        order_value=head["order_value"] if head["order_value"] is not None else value,
        open_lines=sum(1 for ln in lines if ln["final_qty"] > 0),
        last_covered=last_covered,
        tz_name=ctx.settings.timezone,
    )


def _conflict_changes(status: str, lines: list[dict], audit: list[dict], form: dict,
                      item_names: dict) -> dict[str, Any]:
    """After a version conflict: what the other person changed since this page was shown, in words, and whether this
    person's own changes are still in the fields. The form keeps only the quantities this person changed: a field
    left as it was shown would otherwise hold the old quantity and, saved again, undo the other person's change."""
    shown = {k: v for k, v in (form.get("line_shown") or {}).items() if isinstance(order_actions.parse_qty(v), int)}
    typed_qty, typed_reason = form.get("line_qty", {}), form.get("line_reason", {})
    mine = {k for k, v in typed_qty.items()
            if k not in shown or order_actions.parse_qty(v) != order_actions.parse_qty(shown[k])}
    if shown:
        form["line_qty"] = {k: v for k, v in typed_qty.items() if k in mine}
        form["line_reason"] = {k: v for k, v in typed_reason.items() if k in mine}
    words: list[str] = []
    current = {str(ln["item_id"]): ln for ln in lines}
    for iid, ln in current.items():
        if not shown:
            break  # a form without the shown quantities (one line's own form): nothing to compare with
        by = f" by {actor_label(ln['edited_by'])}" if ln["edited_by"] else ""
        why = EDIT_REASON_LABELS.get(ln["edit_reason"] or "")
        why_words = f" ({why})" if why else ""
        if iid not in shown:
            words.append(f"{ln['name']} added: {ln['final_qty']}{by}{why_words}")
        elif int(shown[iid]) != int(ln["final_qty"]):
            words.append(f"Quantity of {ln['name']} changed from {shown[iid]} to {ln['final_qty']}{by}{why_words}")
    for iid in shown:
        if iid not in current:
            words.append(f"{item_names.get(parse_id(iid), f'Item {iid}')} removed (was {shown[iid]})")
    if status not in ("proposed", "in_review"):  # the form was shown on an open order: someone closed it since
        last = next((e for e in reversed(audit) if e["event"] == "status"), None)
        words.append(f"Status: {status_label(status)}" + (f" (by {actor_label(last['actor'])})" if last else ""))
    # an item being added stays typed in its form too
    return {"changes": words, "kept": bool(mine & set(current)) or bool(form.get("add"))}


@router.get("/orders/{order_id}.csv")
def order_csv(request: Request, s: Session, order_id: str) -> Response:
    """The order's lines as a spreadsheet: item, pack, quantities, price and value, who changed what."""
    with _ctx(request).engine.connect() as conn:
        head, lines, nm = _order_data(conn, s, order_id)
    out: list[list[object]] = [["order_id", "store", "supplier", "delivery_date", "status", "item_id", "item",
                                "pack_size", "min_order_qty", "proposed_qty", "order_qty", "unit_price_eur",
                                "line_value_eur", "changed_by", "change_reason"]]
    store = nm["store"].get(head["store_id"], str(head["store_id"]))
    supplier = nm["supplier"].get(head["supplier_id"], str(head["supplier_id"]))
    for ln in lines:
        out.append([head["order_id"], store, supplier, head["delivery_date"].isoformat(), status_label(head["status"]),
                    ln["item_id"], ln["name"], ln["rule"].pack_size, ln["rule"].moq, ln["proposed_qty"],
                    ln["final_qty"], "" if ln["unit_price"] is None else f"{ln['unit_price']:.2f}",
                    "" if ln["line_value"] is None else f"{ln['line_value']:.2f}", ln["edited_by"] or "",
                    order_actions.EDIT_REASONS.get(ln["edit_reason"] or "", ln["edit_reason"] or "")])
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in head["order_id"])[:80]
    return _csv_response(out, f"order-{safe}.csv")


@router.post("/orders/{order_id}", response_class=HTMLResponse)
def order_form(
    request: Request,
    s: Checked,
    order_id: str,
    action: Annotated[str, Form(max_length=10)] = "save",
    version: VersionField = "",
    item: Annotated[list[str] | None, Form()] = None,
    qty: Annotated[list[str] | None, Form()] = None,
    reason: Annotated[list[str] | None, Form()] = None,
    shown: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """The order page's one form: the quantities of every line (a reason for each one changed), then save,
    approve or send now - one transaction, so an approval never goes out without the change it was made with.
    ``shown`` is each line's saved quantity as the page showed it: after a version conflict it tells this person's
    changes from the other person's (see _conflict_changes)."""
    if action not in ("save", "approve", "send"):
        raise PlatformError(422, "validation_error", "action: save, approve or send")
    items, qtys, reasons = item or [], qty or [], reason or []
    if not (len(items) == len(qtys) == len(reasons)) or len(items) > 500:
        raise PlatformError(422, "validation_error", "the form is incomplete: reload the page")
    form: dict[str, Any] = {"line_qty": dict(zip(items, qtys, strict=True)),
                            "line_reason": dict(zip(items, reasons, strict=True)), "field_items": {}}
    if shown is not None and len(shown) == len(items):
        form["line_shown"] = dict(zip(items, shown, strict=True))
    changes: list[order_actions.LineChange] = []

    def run(conn: Any) -> None:
        head = order_actions.lock_order(conn, s.principal, order_id, _version(version))
        current = {ln["item_id"]: ln for ln in order_queries.order_lines(conn, order_id)}
        typed: list[str] = []  # each change's item as the form sent it (the page keys its fields by that)
        for raw_item, raw, why in zip(items, qtys, reasons, strict=True):
            iid = parse_id(raw_item)
            ln = current.get(iid) if iid is not None else None
            parsed = order_actions.parse_qty(raw)
            if ln is not None and parsed == int(ln["final_qty"]):
                continue  # unchanged (its reason, if any, is ignored)
            op = "remove" if ln is not None and parsed == 0 and int(ln["proposed_qty"]) == 0 else "set"
            changes.append(order_actions.LineChange(raw_item if iid is None else iid, op,
                                                    None if op == "remove" else parsed, why))  # type: ignore[arg-type]
            typed.append(raw_item)
        for i, raw_item in enumerate(typed):
            for f in ("qty", "reason", "item_id"):
                form["field_items"][f"/lines/{i}/{f}"] = raw_item
        if changes:
            order_actions.change_lines(conn, s.principal, order_id, changes, None)
        if action == "approve":
            order_actions.approve(conn, s.principal, order_id, None)
        elif action == "send":
            if head["status"] in ("proposed", "in_review"):
                order_actions.approve(conn, s.principal, order_id, None)
            elif head["status"] not in ("approved", "auto_approved", "queued", "retry"):
                raise PlatformError(409, "order_locked", f"order {order_id} is {status_label(head['status'])}: "
                                                         "nothing to send")

    done = {"save": "saved", "approve": "approved", "send": "sent"}[action]
    resp = _mutate(request, s, order_id, done, run, form)
    if resp.status_code != 303:
        return resp
    if action == "save" and not changes:
        return RedirectResponse(f"/orders/{quote(order_id, safe='')}?done=unchanged", status_code=303)
    if action == "approve":
        return RedirectResponse("/queue?" + urlencode({"done": "approved"}), status_code=303)
    if action == "send":
        return _after_send(request, order_id)
    return resp


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


def _line_fields(item_id: str) -> dict[str, str]:
    """A one-line change's field errors (/lines/0/...) belong to that line on the page."""
    return {f"/lines/0/{f}": item_id for f in ("qty", "reason", "item_id")}


def _version(raw: str) -> int | None:
    try:
        return int(raw)
    except ValueError:
        raise PlatformError(422, "validation_error", "version: missing or not a number (reload the page)",
                            [FieldError("/version", "missing or not a number")]) from None


@router.post("/orders/{order_id}/lines/{item_id}", response_class=HTMLResponse)
def edit_qty(
    request: Request,
    s: Checked,
    order_id: str,
    item_id: str,
    qty: QtyField = "",
    reason: ReasonField = "",
    version: VersionField = "",
) -> Response:
    change = order_actions.LineChange(_typed_id(item_id), "set", order_actions.parse_qty(qty), reason)  # type: ignore[arg-type]
    form = {"line_qty": {item_id: qty}, "line_reason": {item_id: reason}, "field_items": _line_fields(item_id)}
    return _change_line(request, s, order_id, "saved", change, version, form)


@router.post("/orders/{order_id}/lines/{item_id}/remove", response_class=HTMLResponse)
def remove_line(
    request: Request,
    s: Checked,
    order_id: str,
    item_id: str,
    reason: ReasonField = "",
    version: VersionField = "",
) -> Response:
    change = order_actions.LineChange(_typed_id(item_id), "remove", None, reason)
    form = {"line_reason": {item_id: reason}, "field_items": _line_fields(item_id)}
    return _change_line(request, s, order_id, "removed", change, version, form)


@router.post("/orders/{order_id}/lines", response_class=HTMLResponse)
def add_line(
    request: Request,
    s: Checked,
    order_id: str,
    item_id: Annotated[str, Form(max_length=64)] = "",
    qty: QtyField = "",
    reason: ReasonField = "",
    version: VersionField = "",
) -> Response:
    qty_in = order_actions.parse_qty(qty)
    change = order_actions.LineChange(_item_by_name(request, item_id.strip()), "add", qty_in, reason)  # type: ignore[arg-type]
    form = {"item_id": item_id, "qty": qty, "reason": reason, "add": True,
            "field_items": {"/lines/0/qty": "add", "/lines/0/reason": "add", "/lines/0/item_id": "add"}}
    return _change_line(request, s, order_id, "added", change, version, form)


def _change_line(request: Request, s: WebSession, order_id: str, done: str, change: order_actions.LineChange,
                 version: str, form: dict) -> Response:
    """One line's change (edit, remove, add) at the version the page showed."""
    return _mutate(request, s, order_id, done,
                   lambda c: order_actions.change_lines(c, s.principal, order_id, [change], _version(version)), form)


def _typed_id(raw: str) -> int | str:
    """A path's item id, or the raw text when it is not one (change_lines reports it on the line)."""
    iid = parse_id(raw)
    return raw if iid is None else iid


def _item_by_name(request: Request, typed: str) -> int | str:
    """The add-line search field takes an item number or its exact name (any case); the raw text when neither."""
    iid = parse_id(typed)
    if iid is not None:
        return iid
    with _ctx(request).engine.connect() as conn:
        items = display_names.names(conn).get("item", {})
    found = [i for i, n in items.items() if n.casefold() == typed.casefold()]
    return found[0] if len(found) == 1 else typed


@router.post("/orders/{order_id}/approve", response_class=HTMLResponse)
def approve(
    request: Request, s: Checked, order_id: str, version: VersionField = ""
) -> Response:
    resp = _mutate(request, s, order_id, "approved",
                   lambda c: order_actions.approve(c, s.principal, order_id, _version(version)), {})
    return RedirectResponse("/queue?done=approved", status_code=303) if resp.status_code == 303 else resp


@router.post("/orders/{order_id}/reject", response_class=HTMLResponse)
def reject(
    request: Request,
    s: Checked,
    order_id: str,
    reason: ReasonField = "",
    version: VersionField = "",
) -> Response:
    resp = _mutate(request, s, order_id, "rejected",
                   lambda c: order_actions.reject(c, s.principal, order_id, _version(version), reason),
                   {"reject_reason": reason})
    return RedirectResponse("/queue?done=rejected", status_code=303) if resp.status_code == 303 else resp


@router.post("/orders/{order_id}/send", response_class=HTMLResponse)
def send_now(
    request: Request, s: Checked, order_id: str, version: VersionField = ""
) -> Response:
    """Approve if still open (one transaction with the outbox message), then run the dispatcher now."""

    def run(conn) -> None:
        head = order_actions.lock_order(conn, s.principal, order_id, _version(version), "approve")
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
    request: Request, s: Checked, order_id: str, version: VersionField = ""
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
    try:
        ctx.dispatch([order_id])
    except Exception:  # noqa: BLE001 - the approval is committed: the page must say so, not "Something went wrong"
        log.exception("send now of order %r failed after its approval", order_id)
        return RedirectResponse(f"/orders/{quote(order_id, safe='')}?done=send_error", status_code=303)
    with ctx.engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM orders.purchase_orders WHERE order_id = :o"),
                              {"o": order_id}).scalar()
        box = order_queries.outbox_state(conn, order_id)
    done = {"sent": "sent", "acknowledged": "sent", "retry": "send_retry", "dead_letter": "send_failed",
            "cancelled": "send_expired"}.get(
        str(status), "queued")
    if done == "sent" and box is not None and box["kept_on_disk"]:
        done = "kept_on_disk"   # the offline default: "sent" as far as the outbox goes, but no supplier has it
    return RedirectResponse(f"/orders/{quote(order_id, safe='')}?done={done}", status_code=303)

"""The FastAPI application: web pages (web.py), POS API (api.py), static files, error handling.

``create_app()`` needs nothing but the settings; tests pass their own engine and a ``dispatch`` callable
(what "send now" runs after the approval committed). Errors: API paths always answer JSON
``{"error": {"code", "message", "fields"?}}``; web paths an HTML page; no stack trace reaches a client.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from replenish import migrations
from replenish.platform.context import PlatformContext
from replenish.platform.errors import FieldError, PlatformError, invalid, pointer
from replenish.platform.labels import actor_label, channel_label, reason_label, status_label, without_paths
from replenish.platform.ratelimit import TokenBucket
from replenish.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
API_PREFIX = "/api/v1"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def default_dispatch(settings: Settings, engine: Engine) -> Callable[[list[str] | None], dict]:
    """What "send now" runs after the approval committed: the dispatcher, for the given orders only."""

    def run(order_ids: list[str] | None) -> dict:
        from replenish import clock
        from replenish.orders.channels import default_channels
        from replenish.orders.dispatcher import drain

        with engine.connect() as conn:
            today = clock.today(conn)
        return drain(engine, default_channels(settings), business_today=today, run_id="platform-send-now",
                     order_ids=order_ids)

    return run


def make_templates() -> Jinja2Templates:
    """The page templates, every one autoescaped.

    Starlette's default ``select_autoescape()`` only matches ``.html``/``.xml`` names, not our ``*.html.j2``:
    autoescaping is switched on for every template regardless of its name, so data (names from the exports,
    ids, reasons, query parameters) can never become markup or htmx attributes.
    """
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True)
    env.filters["reason_label"] = reason_label
    env.filters["status_label"] = status_label
    env.filters["channel_label"] = channel_label
    env.filters["without_paths"] = without_paths
    env.filters["actor_label"] = actor_label
    # an id as one URL path segment: '/' and '..' in an id must not make a form post to another route
    env.filters["segment"] = lambda value: quote(str(value), safe="")
    return Jinja2Templates(env=env)


# Pages: only our own scripts, styles and connections; no plugins, no framing, no <base>, forms post here only.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def _docs_page() -> tuple[HTMLResponse, str]:
    """Swagger UI from the vendored swagger-ui-dist (nothing from a CDN) and a CSP allowing exactly its one
    inline bootstrap script (by hash) and the inline styles swagger-ui sets on its elements."""
    import base64
    import hashlib

    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Replenish POS API",
        swagger_js_url="/static/swagger/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger/swagger-ui.css",
        swagger_favicon_url="/static/swagger/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
    )
    body = bytes(page.body).decode()
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in re.findall(r"<script>(.*?)</script>", body, flags=re.S)
    ]
    csp = (
        f"default-src 'none'; script-src 'self' {' '.join(hashes)}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    )
    return page, csp


def _context(
    settings: Settings,
    engine: Engine,
    dispatch: Callable[[list[str] | None], dict] | None,
    login_limiter: TokenBucket | None,
    api_limiter: TokenBucket | None,
) -> PlatformContext:
    """What every route reads from ``app.state.ctx``; the defaults for what a test did not pass."""
    return PlatformContext(
        settings=settings,
        engine=engine,
        dispatch=dispatch or default_dispatch(settings, engine),
        login_limiter=login_limiter or TokenBucket(settings.login_attempts_per_minute / 60.0,
                                                   settings.login_attempts_per_minute),
        api_limiter=api_limiter or TokenBucket(settings.api_requests_per_second, settings.api_burst),
        templates=make_templates(),
    )


def _add_routes(app: FastAPI) -> None:
    from replenish.platform import airflow_views, api, documents, service, web

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(api.router, prefix=API_PREFIX)
    app.include_router(web.router)
    app.include_router(documents.router)
    app.include_router(airflow_views.router)
    app.include_router(service.router)

    docs_page, docs_csp = _docs_page()  # built once: the hash in its CSP must match the page served

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(bytes(docs_page.body), headers={"Content-Security-Policy": docs_csp})

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"status": "ok"}


_FRAME_ANCESTORS = re.compile(r"frame-ancestors [^;]*")


def _install_security_headers(app: FastAPI, settings: Settings) -> None:
    from replenish.platform.web import AIRFLOW_PAGES

    framer = settings.airflow_ui_origin
    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response = await call_next(request)
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Content-Security-Policy", PAGE_CSP)  # /docs sets its own (one hashed inline script)
        if framer and (request.url.path.startswith(AIRFLOW_PAGES) or getattr(request.state, "airflow_frame", False)):
            # a DAG run tab of the Airflow UI is an iframe: that one origin may frame these pages. No
            # X-Frame-Options: it cannot name an origin, and a browser that knows frame-ancestors ignores it.
            h["Content-Security-Policy"] = _FRAME_ANCESTORS.sub(f"frame-ancestors {framer}",
                                                                h["Content-Security-Policy"])
        else:
            h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        h.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
        if settings.secure_cookies or request.url.scheme == "https":
            h.setdefault("Strict-Transport-Security", "max-age=31536000")
        if not request.url.path.startswith("/static/"):
            # orders, names and the CSRF token: not kept in shared or browser caches (the back button reloads)
            h.setdefault("Cache-Control", "no-store")
        return response


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    dispatch: Callable[[list[str] | None], dict] | None = None,
    login_limiter: TokenBucket | None = None,
    api_limiter: TokenBucket | None = None,
) -> FastAPI:
    """The platform app. Defaults: get_settings(), the warehouse engine, the real dispatcher (drains the outbox
    through the configured channels), rate limits from the settings."""
    settings = settings or get_settings()
    if engine is None:
        from replenish.database import engine as warehouse_engine

        engine = warehouse_engine(settings)
    migrations.ensure_current(engine)  # `replenish serve` and every test app: the schema at this release's head
    ctx = _context(settings, engine, dispatch, login_limiter, api_limiter)
    app = FastAPI(
        title="Replenish ordering platform - POS API",
        version="1",
        description="Per-terminal API for proposals, quantity changes, approvals and sales receipts. "
        "Authenticate with `Authorization: Bearer <api key>` (or `X-API-Key`). Errors: "
        '`{"error": {"code", "message", "fields"}}` with stable codes.',
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    _add_routes(app)
    _install_error_handlers(app)
    _install_security_headers(app, settings)
    if settings.trusted_proxy_list():
        # Outermost (added last): X-Forwarded-For/-Proto count only from these proxies (the sign-in limits key on
        # the client address). `replenish serve` runs uvicorn without its own proxy handling, which would trust
        # 127.0.0.1 by default.
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list())
    return app


def is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX) or request.url.path in ("/openapi.json",)


def _error_response(request: Request, err: PlatformError) -> Response:
    if is_api(request):
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers or None)
    from replenish.platform.web import render_error

    return render_error(request, err)


_PAGE_WORDS = {
    404: "There is no page at this address. The review queue lists the orders you may see.",
    405: "This address is not a page to open: go back to the page before.",
}


def _json_media_type(request: Request) -> bool:
    """Whether the request's body is JSON by its Content-Type (none given: FastAPI reads it as JSON too)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return not media or media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PlatformError)
    async def platform_error(request: Request, exc: PlatformError) -> Response:
        return _error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        fields = []
        for e in exc.errors():
            loc = list(e.get("loc", ()))
            where = str(loc[0]) if loc and loc[0] in ("body", "query", "path", "header", "cookie") else "body"
            rest = loc[1:] if loc and loc[0] == where else loc
            if e.get("type") == "json_invalid":
                # the body is not JSON at all: the pointer is the whole body, the message says where it broke
                ctx_ = e.get("ctx") or {}
                fields.append(FieldError("", f"the body is not valid JSON ({ctx_.get('error', 'parse error')} "
                                             f"at character {rest[0] if rest else '?'})", "body"))
                continue
            msg = str(e.get("msg", "invalid value"))
            if e.get("type") == "missing":
                msg = "required"
            elif where == "body" and not rest and is_api(request) and not _json_media_type(request):
                # FastAPI reads a body of another media type (curl -d sends a form's) as text, and pydantic says
                # "Input should be a valid dictionary": the till's developer needs the header named
                msg = "the body must be JSON, sent with the header Content-Type: application/json"
            fields.append(FieldError(pointer(*rest), msg, where))
        return _error_response(request, invalid(fields))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if not is_api(request):
            from replenish.platform.web import page_of

            page = page_of(request.url.path)
            if exc.status_code == 405 and request.method == "GET" and page:
                return RedirectResponse(page, status_code=303)  # a form's address opened again: its page
            if message == HTTPStatus(exc.status_code).phrase:
                # Starlette's own "Not Found" / "Method Not Allowed" are for programs; a person reads what to do
                message = _PAGE_WORDS.get(exc.status_code, message)
        return _error_response(request, PlatformError(exc.status_code, code, message, headers=dict(exc.headers or {})))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(request, PlatformError(500, "internal_error", "internal error (logged on the server)"))

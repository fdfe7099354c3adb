"""CLI of the platform: ``replenish serve``, ``replenish users ...``, ``replenish api-keys ...``.

Registered on the main typer app by replenish.cli. Clear passwords and API keys are printed once (stdout,
or in the --json document) and never stored.
"""

from __future__ import annotations

from typing import Any, NoReturn

import typer

from replenish import cli_output as cli
from replenish.cli_output import JsonFlag

users_app = typer.Typer(rich_markup_mode=None, help="Platform users (roles admin, buyer, store_manager).",
                        no_args_is_help=True)
keys_app = typer.Typer(rich_markup_mode=None, help="POS terminal API keys (one store each).", no_args_is_help=True)


def fail(message: str, param_hint: str | None = None) -> NoReturn:
    """One line on stderr, exit code 2 (replenish.cli turns every bad-argument error into that)."""
    raise typer.BadParameter(message, param_hint=param_hint)


def _begin():
    from replenish import migrations
    from replenish.database import engine

    migrations.ensure_current()  # the users and keys commands may be the first to touch a new database
    return engine().begin()


def _typed_id(value: str) -> int:
    """A store or supplier id as typed after --store / --supplier: the warehouse's integer (replenish.ids)."""
    from replenish.ids import parse_id

    parsed = parse_id(value)
    if parsed is None:
        raise typer.BadParameter(f"expected an id (a whole number), got {value!r}")
    return parsed


def _scopes(stores: list[int], suppliers: list[int], categories: list[str]) -> dict[str, list[int] | list[str]]:
    out: dict[str, list[int] | list[str]] = {"store": stores, "supplier": suppliers, "category": categories}
    return {k: v for k, v in out.items() if v}


def _check_scopes(role: str, store: list[int], supplier: list[int], category: list[str]) -> None:
    from replenish.platform.accounts import ROLES

    if role not in ROLES:
        fail(f"must be one of {', '.join(ROLES)}, not {role!r}", "--role")
    if role == "admin" and (store or supplier or category):
        fail("an admin sees everything: --store, --supplier and --category do not apply", "--role")
    if role == "store_manager":
        if not store:
            fail("a store manager needs at least one --store", "--store")
        if supplier or category:
            fail("a store manager's scope is stores: --supplier and --category do not apply", "--role")
    if role == "buyer":
        if not (supplier or category):
            fail("a buyer needs --supplier or --category", "--supplier")
        if store:
            fail("a buyer's scope is suppliers or categories: --store does not apply", "--role")


def _require_known(conn: Any, kind: str, values: list[int] | list[str]) -> None:
    from replenish.platform.known_ids import UnknownIds, require_known

    try:
        require_known(conn, kind, values)
    except UnknownIds as e:
        fail(str(e), f"--{kind}")


@users_app.command("add")
def users_add(
    username: str = typer.Argument(..., help="Sign-in name (letters, digits and . _ @ -)", metavar="USERNAME"),
    role: str = typer.Option(..., "--role", help="admin | buyer | store_manager"),
    email: str = typer.Option("", "--email", help="Mail address for the buyer digest (default: the username if it "
                                                  "is one, else <username>@example.com)"),
    store: list[int] = typer.Option([], "--store", parser=_typed_id, help="Store id (store managers; repeatable)"),
    supplier: list[int] = typer.Option([], "--supplier", parser=_typed_id,
                                       help="Supplier id (buyers; repeatable)"),
    category: list[str] = typer.Option([], "--category", help="Item category (buyers; repeatable)"),
    as_json: JsonFlag = False,
) -> None:
    """Create a user with a generated password (printed once). Store, supplier and category ids must exist in
    the warehouse (marts.dim_stores, dim_suppliers, dim_items)."""
    from replenish.platform import accounts
    from replenish.platform.known_ids import plain_email, plain_name
    try:
        plain_name(username, "username")
    except ValueError as e:
        fail(str(e), "username")
    try:
        email = plain_email(email or (username if "@" in username else f"{username}@example.com"))
    except ValueError as e:
        fail(str(e), "--email")
    store, supplier = list(dict.fromkeys(store)), list(dict.fromkeys(supplier))
    category = list(dict.fromkeys(category))
    _check_scopes(role, store, supplier, category)
    with cli.stdout_for_json(as_json):
        with _begin() as conn:
            if accounts.get_user(conn, username) is not None:
                fail(f"user {username!r} exists", "username")
            for kind, values in (("store", store), ("supplier", supplier), ("category", category)):
                _require_known(conn, kind, values)
            try:
                user, password = accounts.add_user(conn, username, email, role,
                                                   scopes=_scopes(store, supplier, category))
            except ValueError as e:
                fail(str(e))
        doc: dict[str, Any] = {"username": user.username, "role": user.role, "password": password,
               "scopes": user.typed_scopes()}
        if as_json:
            cli.emit(doc, True)
        else:
            scope = "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in doc["scopes"].items()) or "everything"
            cli.err.print(f"user {user.username} ({user.role}, sees {scope}) created; the password is shown once:")
            typer.echo(f"{user.username} {password}")


@users_app.command("list")
def users_list(as_json: JsonFlag = False) -> None:
    """All users with role, scopes and whether they are active."""
    from replenish.platform import accounts

    with cli.stdout_for_json(as_json):
        with _begin() as conn:
            users = accounts.list_users(conn)
        doc: dict[str, Any] = {"users": [
            {"username": u.username, "role": u.role, "active": u.is_active, "email": u.email,
             "scopes": u.typed_scopes()} for u in users]}
        if as_json:
            cli.emit(doc, True)
        else:
            from replenish.cli_output import table

            typer.echo(table([{**u, "sees": "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in u["scopes"].items())
                               or "everything"} for u in doc["users"]],
                             ["username", "role", "active", "email", "sees"]), nl=False)


@users_app.command("disable")
def users_disable(
    username: str = typer.Argument(..., help="The user to disable", metavar="USERNAME"),
    as_json: JsonFlag = False,
) -> None:
    """Disable a user: sign-in refused, open sessions end at once."""
    from replenish.platform import accounts
    from replenish.platform.sessions import end_user_sessions

    with cli.stdout_for_json(as_json):
        with _begin() as conn:
            found = accounts.disable_user(conn, username)
            ended = end_user_sessions(conn, username) if found else 0
        if not found:
            fail(f"no user {username!r}", "username")
        cli.emit({"username": username, "disabled": True, "sessions_ended": ended}, as_json)


@users_app.command("enable")
def users_enable(
    username: str = typer.Argument(..., help="The user to enable again", metavar="USERNAME"),
    as_json: JsonFlag = False,
) -> None:
    """Enable a disabled user again (their password is unchanged)."""
    from replenish.platform import accounts

    with cli.stdout_for_json(as_json):
        with _begin() as conn:
            found = accounts.enable_user(conn, username)
        if not found:
            fail(f"no user {username!r}", "username")
        cli.emit({"username": username, "enabled": True}, as_json)


@users_app.command("reset-password")
def users_reset_password(
    username: str = typer.Argument(..., help="The user who needs a new password", metavar="USERNAME"),
    as_json: JsonFlag = False,
) -> None:
    """Give a user a new generated password (printed once): for a forgotten or leaked one. Their open sessions end
    and a sign-in backoff from wrong guesses is lifted."""
    from replenish.platform import accounts
    from replenish.platform.ratelimit import account_key, clear_failures
    from replenish.platform.sessions import end_user_sessions

    with cli.stdout_for_json(as_json):
        with _begin() as conn:
            if accounts.get_user(conn, username) is None:
                fail(f"no user {username!r}", "username")
            password = accounts.generate_password()
            accounts.set_password(conn, username, password)
            ended = end_user_sessions(conn, username)  # a leaked password's sessions too
            clear_failures(conn, account_key(username))
        if as_json:
            cli.emit({"username": username, "password": password, "sessions_ended": ended}, True)
        else:
            cli.err.print(f"user {username}: new password (shown once); {ended} open session(s) ended:")
            typer.echo(f"{username} {password}")


@users_app.command("demo")
def users_demo(as_json: JsonFlag = False) -> None:
    """(Re)create the demo users over the orders in the database, with new generated passwords."""
    with cli.stdout_for_json(as_json):
        rows = seed_and_describe()
        cli.emit({"users": rows}, as_json)


def seed_and_describe() -> list[dict[str, Any]]:
    from replenish.platform.demo import seed_demo_users

    with _begin() as conn:
        return seed_demo_users(conn)


@keys_app.command("create")
def keys_create(
    name: str = typer.Argument(..., help="Terminal name, e.g. store12-till1", metavar="NAME"),
    store: int = typer.Option(..., "--store", parser=_typed_id, help="The one store this key may act for"),
    as_json: JsonFlag = False,
) -> None:
    """Create an API key (printed once; stored hashed). The store must exist in marts.dim_stores."""
    from replenish.platform import api_keys
    from replenish.platform.known_ids import plain_name
    try:
        plain_name(name, "key name")
    except ValueError as e:
        fail(str(e), "name")
    with cli.stdout_for_json(as_json):
        with _begin() as conn:
            _require_known(conn, "store", [store])
            try:
                key, clear = api_keys.create_key(conn, name, store, created_by="cli")
            except ValueError as e:
                fail(str(e))
        if as_json:
            cli.emit({"name": key.name, "store_id": key.store_id, "api_key": clear}, True)
        else:
            # the key alone on stdout (`... > key.txt` keeps it); what it is on stderr
            cli.err.print(f"API key {key.name} for store {key.store_id} (shown once, stored hashed):")
            typer.echo(clear)


@keys_app.command("revoke")
def keys_revoke(
    name: str = typer.Argument(..., help="The key's terminal name", metavar="NAME"),
    as_json: JsonFlag = False,
) -> None:
    """Revoke the active key of this name (its next request gets 401)."""
    from replenish.platform import api_keys

    with cli.stdout_for_json(as_json):
        with _begin() as conn:
            done = api_keys.revoke_key(conn, name)
        if not done:
            fail(f"no active API key named {name!r}", "name")
        cli.emit({"name": name, "revoked": True}, as_json)


@keys_app.command("list")
def keys_list(as_json: JsonFlag = False) -> None:
    """Keys with store, prefix, creation, revocation and last use (never the key itself)."""
    from replenish.platform import api_keys

    with cli.stdout_for_json(as_json):
        with _begin() as conn:
            rows = api_keys.list_keys(conn)
        if as_json:
            cli.emit({"api_keys": rows}, True)
        else:
            from replenish.cli_output import table

            typer.echo(table(rows), nl=False)


def serve(
    host: str | None = typer.Option(None, "--host", help="Bind address (default settings.platform_host, 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", help="Port (default settings.platform_port, 8000)"),
    demo_users: bool = typer.Option(False, "--demo-users", help="First (re)create the demo users and print them"),
) -> None:
    """Start the ordering platform (web app + POS API) with uvicorn, in the foreground."""
    import uvicorn

    from replenish.platform.app import create_app
    from replenish.platform.demo import format_demo_users
    from replenish.settings import get_settings

    cli.setup_logging()
    s = get_settings()
    host, port = host or s.platform_host, port or s.platform_port
    app = create_app(s)
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if demo_users:
        cli.err.print(format_demo_users(seed_and_describe(), base))
    cli.err.print(f"[bold]ordering platform on {base}[/bold]  (POS API docs: {base}/docs; Ctrl-C stops)")
    # One process on purpose: the sign-in and API rate limits are in-process token buckets.
    # proxy_headers=False: uvicorn's own handling trusts X-Forwarded-For from 127.0.0.1; the app believes
    # only REPLENISH_TRUSTED_PROXIES (create_app).
    uvicorn.run(app, host=host, port=port, proxy_headers=False, server_header=False, log_level="info")
    # uvicorn returns after a graceful stop (Ctrl-C): the normal end of a server, not an interruption
    cli.err.print(f"ordering platform on {base} stopped")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="api-keys")
    app.command("serve")(serve)

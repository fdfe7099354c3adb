"""Sign-in against guessing and enumeration (TestClient, real database, real argon2).

- X-Forwarded-For counts only from configured proxies (REPLENISH_TRUSTED_PROXIES, default none), so a
  guesser cannot pick a new client address per attempt;
- a per-account backoff holds whatever the address, for known and unknown names alike;
- unknown, disabled and wrong-password sign-ins do the same work (one argon2 verification) and get the
  same answer. No timings are asserted: the test counts the verifications instead.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from support.platform_app import CSRF_RE, make_app


def _user(world: dict, suffix: str, *, active: bool = True) -> dict[str, str]:
    from replenish.database import engine
    from replenish.platform.accounts import add_user, disable_user

    name = f"{world['tag']}-{suffix}"
    with engine().begin() as conn:
        _, pw = add_user(conn, name, f"{suffix}@example.com", "admin")
        if not active:
            disable_user(conn, name)
    return {"username": name, "password": pw}


def _form(c: TestClient) -> str:
    return CSRF_RE.search(c.get("/login").text).group(1)


def _try(c: TestClient, token: str, username: str, password: str, **headers: str):
    return c.post("/login", data={"username": username, "password": password, "csrf_token": token},
                  headers=headers, follow_redirects=False)


def _settings(**update: Any):
    from replenish.settings import get_settings

    return get_settings().model_copy(update=update)


def test_trusted_proxies_setting_takes_addresses_only() -> None:
    from pydantic import ValidationError

    from replenish.settings import Settings

    assert Settings().trusted_proxies == ""  # default: trust no proxy
    ok = Settings(trusted_proxies="10.0.0.1, 192.168.0.0/16,::1")
    assert ok.trusted_proxy_list() == ["10.0.0.1", "192.168.0.0/16", "::1"]
    for bad in ("*", "proxy.local", "10.0.0.1,nope"):
        with pytest.raises(ValidationError):
            Settings(trusted_proxies=bad)


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(world) -> None:
    from replenish.platform.ratelimit import TokenBucket

    # one attempt per address+name and 5 per address (cost 0.2): new names and a new X-Forwarded-For
    # every time must still run into the per-address limit, because the peer (127.0.0.1) is not trusted
    app = make_app(login_limiter=TokenBucket(1 / 60, 1))
    c = TestClient(app, client=("127.0.0.1", 40000))
    token = _form(c)
    codes = [
        _try(c, token, f"{world['tag']}-spray{i}", "x", **{"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(6)
    ]
    assert codes == [401] * 5 + [429]

    # behind a configured proxy, the forwarded address is the client: each one has its own budget
    app = make_app(settings=_settings(trusted_proxies="127.0.0.1"), login_limiter=TokenBucket(1 / 60, 1))
    c = TestClient(app, client=("127.0.0.1", 40000))
    token = _form(c)
    codes = [
        _try(c, token, f"{world['tag']}-proxied{i}", "x", **{"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(6)
    ]
    assert codes == [401] * 6
    # ... but a forwarded-for from a peer that is not the proxy is still ignored
    c = TestClient(app, client=("198.51.100.7", 40000))
    token = _form(c)
    codes = [
        _try(c, token, f"{world['tag']}-direct{i}", "x", **{"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(6)
    ]
    assert codes == [401] * 5 + [429]


def _locked_until_passes(account: str) -> None:
    """Stand-in for waiting out the backoff: move the lock into the past."""
    from replenish.database import engine

    with engine().begin() as conn:
        conn.execute(
            text("UPDATE platform.login_failures SET locked_until = now() - interval '1 second' WHERE account = :a"),
            {"a": account},
        )


def _failures(account: str) -> int | None:
    from replenish.database import engine

    with engine().connect() as conn:
        return conn.execute(
            text("SELECT failures FROM platform.login_failures WHERE account = :a"), {"a": account}
        ).scalar()


def test_per_account_backoff_holds_across_addresses(world) -> None:
    u = _user(world, "guessed")
    app = make_app(settings=_settings(login_failures_before_backoff=3, login_backoff_max_seconds=900))

    def attempt(i: int, password: str, username: str | None = None):
        c = TestClient(app, client=(f"198.51.100.{i}", 40000))  # a new address for every attempt
        return _try(c, _form(c), username or u["username"], password)

    codes = [attempt(i, "wrong").status_code for i in range(3)]
    assert codes == [401, 401, 401]
    r = attempt(10, u["password"])  # the right password, from yet another address: still refused now
    assert r.status_code == 429 and "Too many sign-in attempts" in r.text
    assert 25 <= int(r.headers["Retry-After"]) <= 31  # the first wait: 30 s
    assert _failures(u["username"].lower()) == 3  # refused attempts do not count as failures

    _locked_until_passes(u["username"].lower())
    r = attempt(11, "still wrong", username=u["username"].upper() + " ")  # case and spaces do not escape it
    assert r.status_code == 401
    r = attempt(12, u["password"])
    assert r.status_code == 429 and 55 <= int(r.headers["Retry-After"]) <= 61  # doubled

    _locked_until_passes(u["username"].lower())
    assert attempt(13, u["password"]).status_code == 303
    assert _failures(u["username"].lower()) is None  # a sign-in clears the account's failures


def test_unknown_names_back_off_like_real_ones(world) -> None:
    app = make_app(settings=_settings(login_failures_before_backoff=2))
    c = TestClient(app)
    token = _form(c)
    name = world["tag"] + "-nobody"
    codes = [_try(c, token, name, "x").status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    assert _try(c, token, name + "\x00", "x").status_code == 429  # control characters: the same account


def _normalised(r, username: str) -> tuple:
    body = r.text.replace(f'value="{html.escape(username)}"', 'value="USERNAME"')  # the form keeps the name
    body = re.sub(r'data-now="[^"]*"', "", body)  # the server clock, for the countdowns
    headers = {k: v for k, v in r.headers.items() if k not in ("date", "content-length")}
    return r.status_code, body, headers


def test_unknown_disabled_and_wrong_password_get_the_same_work_and_answer(world, monkeypatch) -> None:
    from replenish.platform import accounts

    verified: list[str] = []
    real_verify = accounts.verify_password

    def counting_verify(password_hash: str, password: str) -> bool:
        verified.append(password_hash)
        return real_verify(password_hash, password)

    monkeypatch.setattr(accounts, "verify_password", counting_verify)
    from replenish.database import engine

    with engine().begin() as conn:  # the empty name is one account for every run: start it afresh
        conn.execute(text("DELETE FROM platform.login_failures WHERE account = ''"))
    active, disabled = _user(world, "same-a"), _user(world, "same-d", active=False)
    app = make_app()
    c = TestClient(app)
    token = _form(c)
    cases = {
        "wrong password": (active["username"], "not-it"),
        "disabled, right password": (disabled["username"], disabled["password"]),
        "disabled, wrong password": (disabled["username"], "not-it"),
        "unknown user": (world["tag"] + "-unknown", "not-it"),
        "control characters": (world["tag"] + "-ctl\x01", "not-it"),
        "empty username": ("", "not-it"),
    }
    answers = {}
    for case, (username, password) in cases.items():
        verified.clear()
        r = _try(c, token, username, password)
        assert len(verified) == 1, f"{case}: {len(verified)} argon2 verifications"
        assert verified[0].startswith("$argon2"), case  # a real hash, or the dummy one made the same way
        answers[case] = _normalised(r, username)
    first = next(iter(answers.values()))
    assert first[0] == 401 and "Wrong username or password." in first[1]
    for case, answer in answers.items():
        assert answer == first, case
    assert "set-cookie" not in first[2]
    verified.clear()
    ok = _try(c, token, active["username"], active["password"])
    assert ok.status_code == 303 and len(verified) == 1


def test_sign_in_replaces_an_existing_session(world) -> None:
    u = _user(world, "rotate")
    app = make_app()
    c = TestClient(app)
    assert _try(c, _form(c), u["username"], u["password"]).status_code == 303
    first = c.cookies.get("rp_session")
    assert _try(c, _form(c), u["username"], u["password"]).status_code == 303
    second = c.cookies.get("rp_session")
    assert first != second
    assert TestClient(app, cookies={"rp_session": first}).get("/queue", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    "nxt",
    ["//evil.example/x", "/\\evil.example", "https://evil.example/", "/\x00x", "javascript:alert(1)", "/" + "a" * 3000,
     "/logout", '/"><div hx-get="/logout" hx-trigger="load">', "/orders/a/approve", "/queue/approve"],
)
def test_next_stays_on_this_site(world, nxt: str) -> None:
    u = world["users"]["admin"]
    c = TestClient(make_app())
    page = c.get("/login", params={"next": nxt}).text
    assert re.search(r'name="next" value="/queue"', page)
    if len(nxt) <= 2000:  # longer is refused as invalid input (422)
        r = c.post("/login", data={"username": u["username"], "password": u["password"], "csrf_token": _form(c),
                                   "next": nxt}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/queue"


def test_idle_sessions_end(world) -> None:
    from replenish.database import engine

    u = _user(world, "idle")
    app = make_app(settings=_settings(session_idle_minutes=30))
    c = TestClient(app)
    assert _try(c, _form(c), u["username"], u["password"]).status_code == 303
    token_hash = __import__("hashlib").sha256(c.cookies.get("rp_session").encode()).hexdigest()

    def last_seen(minutes_ago: int | None = None):
        with engine().begin() as conn:
            if minutes_ago is not None:
                conn.execute(text("UPDATE platform.sessions SET last_seen_at = now() - make_interval(mins => :m) "
                                  "WHERE token_hash = :h"), {"m": minutes_ago, "h": token_hash})
            return conn.execute(text("SELECT now() - last_seen_at < interval '1 minute' FROM platform.sessions "
                                     "WHERE token_hash = :h"), {"h": token_hash}).scalar()

    last_seen(5)  # five minutes without a request: still signed in, and the use is recorded
    assert c.get("/queue", follow_redirects=False).status_code == 200
    assert last_seen() is True
    last_seen(31)  # half an hour without a request: the session is over
    r = c.get("/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert last_seen() is None  # and gone from the table


def test_sign_in_decisions_are_logged_without_forging_lines(world, caplog) -> None:
    import logging

    c = TestClient(make_app())
    with caplog.at_level(logging.INFO, logger="replenish.platform.web"):
        _try(c, _form(c), world["tag"] + "-ghost\nsigned in: 'admin'", "x")
    failed = [r.getMessage() for r in caplog.records if "sign-in failed" in r.getMessage()]
    assert len(failed) == 1 and "\n" not in failed[0]  # one record, one line


def test_next_returns_to_the_queue_or_an_order(world) -> None:
    u = world["users"]["admin"]
    for nxt in ("/queue?status=all&store_id=S1", "/orders/x-S1-P1-20240101", "/orders/x%2Fy?done=saved"):
        c = TestClient(make_app())
        r = c.post("/login", data={"username": u["username"], "password": u["password"], "csrf_token": _form(c),
                                   "next": nxt}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == nxt


@pytest.mark.slow
def test_replenish_serve_ignores_forwarded_for(world) -> None:
    """The real entry point: uvicorn's own proxy handling (which trusts 127.0.0.1) is off in `replenish serve`."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import httpx
    from support.browser import free_port, wait_http

    port = free_port()
    exe = str(Path(sys.executable).with_name("replenish"))
    env = {**os.environ, "REPLENISH_LOGIN_ATTEMPTS_PER_MINUTE": "1"}
    proc = subprocess.Popen([exe, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", proc=proc)
        with httpx.Client(base_url=base) as c:
            token = CSRF_RE.search(c.get("/login").text).group(1)
            codes = [
                c.post("/login", data={"username": f"{world['tag']}-serve{i}", "password": "x", "csrf_token": token},
                       headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
                for i in range(6)
            ]
            assert "server" not in c.get("/healthz").headers  # no product banner
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert codes == [401] * 5 + [429]

"""Shared helpers for the browser tests: Debian's Chromium under Playwright, and a live app server.

Playwright never downloads a browser here: it drives /usr/bin/chromium (``make chromium`` installs it),
with a fresh user-data-dir per test and no network beyond loopback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("REPLENISH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1440, "height": 900}
AXE = Path(__file__).parent.parent / "vendor" / "axe-core" / "axe.min.js"
MIN_TAP_PX = 44  # WCAG 2.5.5 target size


def axe_violations(page: Any, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core (vendored) on the current page: the WCAG 2.x A/AA violations of these impacts, one line each.

    Evaluated through the DevTools protocol (page.evaluate), which the page's CSP does not govern: the CSP is
    tested as it is served."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate(
        """async () => {
            const r = await window.axe.run(document, {runOnly: {type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )
    return [f"{v['impact']} {v['id']}: {v['help']} at {v['nodes']}" for v in result if v["impact"] in impacts]


def small_tap_targets(page: Any) -> list[str]:
    """Visible controls a finger uses that are smaller than 44 x 44 CSS px (a checkbox counts by its label)."""
    return page.evaluate(
        """(min) => {
            const out = [];
            const sel = 'a[href], button, summary, select, input:not([type=hidden]):not([type=checkbox]), label.tap';
            for (const el of document.querySelectorAll(sel)) {
                const r = el.getBoundingClientRect(), st = getComputedStyle(el);
                if (!r.width || !r.height || st.visibility === 'hidden') continue;
                if (el.closest('.sr') || el.closest('details:not([open]) > :not(summary)')) continue;
                if (r.height < min - 0.5 || r.width < min - 0.5)
                    out.push(`${el.tagName.toLowerCase()} "${(el.textContent || el.name || '').trim().slice(0, 30)}" `
                             + `${Math.round(r.width)}x${Math.round(r.height)}`);
            }
            return out;
        }""",
        MIN_TAP_PX,
    )


def horizontal_overflow(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth"))


def wider_than_the_window(page: Any) -> int:
    """How many CSS px the page is wider than the window (a phone then scrolls sideways); 0 when it fits.

    scrollWidth against window.innerWidth, and against the layout viewport too: on a mobile device (is_mobile)
    Chromium zooms out to show a too-wide page whole, and innerWidth grows with it (1144 px for a 412 px phone)."""
    return int(page.evaluate("Math.max(0, document.documentElement.scrollWidth"
                             " - Math.min(window.innerWidth, document.documentElement.clientWidth))"))


def device(playwright: Any, name: str) -> tuple[dict[str, int], dict[str, Any]]:
    """A Playwright device (\"Pixel 7\") as :func:`chromium_context`'s viewport and options: its size, pixel ratio,
    touch and user agent, on Debian's Chromium whatever browser the descriptor names."""
    options = dict(playwright.devices[name])
    options.pop("default_browser_type", None)
    return options.pop("viewport"), options


class Clicks:
    """Counts what a person does: each click or tap, each field tapped to type in, each choice in a list."""

    def __init__(self, touch: bool) -> None:
        self.touch, self.n, self.log = touch, 0, []

    def press(self, locator: Any, what: str = "") -> None:
        self.n += 1
        self.log.append(what or "press")
        locator.tap() if self.touch else locator.click()

    def type(self, locator: Any, value: str, what: str = "") -> None:
        self.n += 1
        self.log.append(what or f"type {value}")
        locator.fill(value)

    def choose(self, locator: Any, value: str, what: str = "") -> None:
        self.n += 1
        self.log.append(what or f"choose {value}")
        locator.select_option(value)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def chromium_context(playwright: Any, viewport: dict[str, int], **kwargs: Any) -> Iterator[Any]:
    """A persistent context (own, throw-away user-data-dir) of the system Chromium."""
    with tempfile.TemporaryDirectory(prefix="replenish-chromium-") as profile:
        ctx = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=viewport,
            **kwargs,
        )
        try:
            yield ctx
        finally:
            ctx.close()


def wait_http(url: str, timeout_s: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered (4xx on a protected page still means it is up)
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from {url} within {timeout_s:.0f} s") from None
            time.sleep(0.2)


@contextmanager
def app_in_thread(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread on a free loopback port; yields the base URL.

    In-process so the test can hand the app its own engine and dispatcher (channels writing to tmp dirs).
    """
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextmanager
def uvicorn_server(
    app: str, env: dict[str, str], *, factory: bool = True, workers: int = 1, log: Path | None = None
) -> Iterator[str]:
    """Run ``uvicorn app`` on a free loopback port in a subprocess; yields the base URL.

    A subprocess (not a thread) so the app gets its own settings cache and event loop, exactly as in production.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    if factory:
        cmd.append("--factory")
    if workers > 1:
        cmd += ["--workers", str(workers)]
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/openapi.json", proc=proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]

"""docker-compose.yml: the addresses the platform and the Airflow UI are told match the ports compose publishes.

Compose published the Airflow UI on http://localhost:8080 while the platform kept its default Airflow UI origin
(http://127.0.0.1:8080), the one site allowed to frame its DAG run tabs: the browser refused every tab."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from replenish.settings import Settings

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def _unset(value: str) -> str:
    """A value as compose reads it with no .env and none of its variables set: ``${NAME:-default}`` is the default."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


def _services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _service_running(command: str) -> tuple[str, dict[str, Any]]:
    found = [(name, svc) for name, svc in _services().items() if str(svc.get("command", "")).startswith(command)]
    assert len(found) == 1, f"one service runs `{command}`: {[name for name, _ in found]}"
    return found[0]


def _published(service: dict[str, Any], container_port: int) -> tuple[str, int]:
    """The host address and port a browser on the docker host reaches ``container_port`` of ``service`` at (the
    short syntax, ``[HOST:]PUBLISHED:TARGET``, as this file writes it)."""
    for spec in service.get("ports", []):
        *address, published, target = _unset(str(spec)).split(":")
        if int(target) == container_port:
            host = address[0] if address and address[0] not in ("", "0.0.0.0") else "localhost"
            return host, int(published)
    raise AssertionError(f"port {container_port} is not published: {service.get('ports')}")


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: _unset(str(v)) for k, v in (service.get("environment") or {}).items()}


def test_the_platform_lets_the_published_airflow_ui_frame_its_run_tabs() -> None:
    _, ui = _service_running("airflow api-server")
    platform_name, platform = _service_running("replenish serve")
    ui_host, ui_port = _published(ui, 8080)
    origin = Settings(airflow_ui_origin=_env(platform).get("REPLENISH_AIRFLOW_UI_ORIGIN")).airflow_ui_origin
    assert origin is not None, f"{platform_name}: REPLENISH_AIRFLOW_UI_ORIGIN is not set"
    parts = urlsplit(origin)
    assert (parts.hostname, parts.port or 80) == (ui_host, ui_port), (origin, ui_host, ui_port)


def test_the_airflow_ui_links_to_the_published_platform_on_the_same_host() -> None:
    _, ui = _service_running("airflow api-server")
    _, platform = _service_running("replenish serve")
    serve = str(platform["command"])
    port = int(re.search(r"--port (\d+)", serve).group(1)) if "--port" in serve else 8000  # type: ignore[union-attr]
    host, published = _published(platform, port)
    base = urlsplit(Settings(platform_base_url=_env(ui)["REPLENISH_PLATFORM_BASE_URL"]).platform_base_url)
    assert (base.hostname, base.port or 80) == (host, published), base.geturl()
    # one host on two ports is one site: the framed tabs get the platform's SameSite=Lax sign-in cookie
    origin = urlsplit(Settings(airflow_ui_origin=_env(platform)["REPLENISH_AIRFLOW_UI_ORIGIN"]).airflow_ui_origin)
    assert base.hostname == origin.hostname


def test_the_airflow_ui_sends_browsers_to_its_published_address_and_workers_to_the_service() -> None:
    """Airflow's sign-in redirects to ``api.base_url``: a compose service name there is a host no browser on the
    docker host can resolve. The workers reach the api-server by that name, through the execution API URL."""
    api_name, ui = _service_running("airflow api-server")
    env = _env(ui)
    base = urlsplit(env["AIRFLOW__API__BASE_URL"])
    assert (base.hostname, base.port or 80) == _published(ui, 8080), base.geturl()
    execution = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (execution.hostname, execution.port, execution.path) == (api_name, 8080, "/execution/")

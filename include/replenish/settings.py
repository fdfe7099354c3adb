"""Typed settings for every part of the platform (env prefix ``REPLENISH_``).

One module on purpose: the dbt profile, the GX datasource, Airflow and the
platform all derive their connection and folders from here, so they cannot
disagree about which database or which folder they use.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    # In a checkout (editable install) the package lives in <repo>/include/replenish;
    # the repo root is the natural home. Installed elsewhere, fall back to the cwd.
    here = Path(__file__).resolve()
    repo = here.parents[2]
    if (repo / "pyproject.toml").exists() and (repo / "dbt_project").exists():
        return repo
    return Path.cwd()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REPLENISH_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Project root (dags/, dbt_project/).")
    state_dir: Path | None = Field(default=None, description="Git-ignored state: embedded DB, exports, outbox.")

    exports_root: Path | None = Field(
        default=None, description="Where the POS/MMS exports land (<root>/<date>/<system>/<entity>.csv)."
    )
    database_url: str | None = Field(
        default=None,
        description="postgresql://user:pass@host:port/db. Unset: an embedded PostgreSQL under state_dir.",
    )
    embedded_port: int = Field(default=54329, description="TCP port of the embedded server on 127.0.0.1.")
    embedded_database: str = "replenish"

    extract_workers: int = Field(
        default=0, ge=0, description="Processes reading and validating history chunks in parallel (0 = one per core)."
    )

    seed: int = Field(default=20160102, description="Seed of the generated retailer around the bakery panel.")
    ddop_version: str = "0.7.6"

    timezone: str = Field(
        default="Europe/Berlin",
        description="The retailer's time zone: business dates, order dates and cutoffs (see replenish.clock).",
    )
    release_rules_path: Path | None = Field(
        default=None, description="The auto-release rules (YAML). Default: the versioned rules in the package."
    )
    store_partitions: int = Field(
        default=4, ge=1,
        description="Store groups the nightly DAG forecasts and proposes in parallel (one mapped task each).",
    )
    forecast_retention_days: int = Field(
        default=400, ge=35,
        description="Stored forecasts (and their scores in marts.fct_forecast_accuracy) whose target date is more "
                    "than this many days before the business date are deleted by the nightly run: ~420,000 rows a "
                    "night at 200 stores x 150 items. 400 keeps a year to compare a season with.",
    )

    sendgrid_api_key: SecretStr | None = None
    sendgrid_base_url: str = "https://api.sendgrid.com"
    sendgrid_sandbox: bool = False
    mail_from: str = "replenish@example.com"
    platform_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The platform's address as a browser reaches it (links in digests, alerts and the Airflow UI).",
    )
    airflow_ui_origin: str | None = Field(
        default="http://127.0.0.1:8080",
        description="The Airflow UI's origin (scheme://host:port): the one site that may show the platform's run "
        "pages (/airflow/...) in its DAG run tabs. Every other page, and every other site, stays unframeable. "
        "Empty: no site may frame any page.",
    )

    # Buyer digests and run monitoring (replenish.digest, replenish.monitoring).
    digest_yoy_threshold: float = Field(
        default=0.5, gt=0,
        description="Digest exception: forecast P50 deviates from last year's level (the mean of the same weekday "
        "51, 52 and 53 weeks earlier) by more than this share of it.",
    )
    digest_yoy_min_units: float = Field(
        default=5.0, ge=0, description="Last-year units below this count as this many (no alarm on tiny series)."
    )
    digest_yoy_horizon_days: int = Field(default=7, ge=1, description="Forecast days compared with last year.")
    alert_email_to: str = Field(
        default="data-team@example.com",
        description="Comma-separated recipients of pipeline failure and forecast drift alerts.",
    )
    data_docs_url: str | None = Field(
        default=None, description="Where the GX Data Docs site is served (default: the platform, /data-docs/)."
    )
    reports_url: str | None = Field(
        default=None, description="Where the forecast reports are served (default: the platform, /reports)."
    )

    # Ordering platform (replenish serve). Sessions are server-side (platform.sessions): the cookie holds a
    # random token only, so no signing secret is needed.
    platform_host: str = Field(default="127.0.0.1", description="Address `replenish serve` binds to.")
    platform_port: int = Field(default=8000, description="Port of `replenish serve`.")
    secure_cookies: bool = Field(
        default=False, description="Mark session cookies Secure (set behind TLS; https requests always get it)."
    )
    session_hours: int = Field(default=12, ge=1, description="Sign-in lifetime of a web session.")
    session_idle_minutes: int = Field(
        default=30, ge=0, description="A web session unused this long ends (0: only session_hours counts)."
    )
    login_attempts_per_minute: int = Field(
        default=5, ge=1, description="Sign-in attempts per client IP and username (per client IP alone: 5x)."
    )
    login_failures_before_backoff: int = Field(
        default=5, ge=1,
        description="Consecutive failed sign-ins of one account name (from any address) before it must wait: "
        "30 s, then doubling with each further failure.",
    )
    login_backoff_max_seconds: int = Field(default=900, ge=1, description="Longest per-account sign-in wait.")
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated IP addresses or networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto the platform believes. Empty (default): none, the peer address is the client.",
    )
    api_requests_per_second: float = Field(default=20.0, description="POS API token bucket refill per API key.")
    api_burst: int = Field(default=60, description="POS API token bucket size per API key.")

    @field_validator("platform_base_url", "data_docs_url", "reports_url")
    @classmethod
    def _browser_url(cls, value: str | None) -> str | None:
        # these are links a browser follows from an http page (the Airflow UI, a mail): it will not open file://
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {value!r} (serve the folder, e.g. with `replenish serve`)")
        return value

    @field_validator("airflow_ui_origin")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        # compared with the browser's Origin and written into CSP frame-ancestors: exactly scheme://host[:port]
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        host_port = r"([A-Za-z0-9-]+\.)*[A-Za-z0-9-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?"
        if parts.scheme not in ("http", "https") or not re.fullmatch(host_port, parts.netloc) \
                or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"not an origin (scheme://host[:port]): {value!r}")
        return f"{parts.scheme}://{parts.netloc.lower()}"

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        for entry in (e.strip() for e in value.split(",")):
            if not entry:
                continue
            if entry == "*":
                raise ValueError("'*' would let any client choose its address: list the proxies' addresses")
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {entry!r}") from None
        return value

    def trusted_proxy_list(self) -> list[str]:
        return [e.strip() for e in self.trusted_proxies.split(",") if e.strip()]

    @property
    def state(self) -> Path:
        return (self.state_dir or self.home / ".state").resolve()

    @property
    def cache_dir(self) -> Path:
        return self.state / "cache"

    @property
    def exports_dir(self) -> Path:
        return (self.exports_root or self.state / "exports").resolve()

    @property
    def outbox_dir(self) -> Path:
        return self.state / "outbox"

    @property
    def edi_outbound_dir(self) -> Path:
        return self.state / "edi_outbound"

    @property
    def reports_dir(self) -> Path:
        return self.state / "reports"

    @property
    def models_dir(self) -> Path:
        return self.state / "models"

    @property
    def pgdata_dir(self) -> Path:
        return self.state / "pgdata"

    @property
    def airflow_home(self) -> Path:
        return self.state / "airflow"

    @property
    def dbt_project_dir(self) -> Path:
        return self.home / "dbt_project"

    @property
    def dbt_profiles_dir(self) -> Path:
        return self.state / "dbt_profiles"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

"""What every request of the platform shares: settings, engine, the send-now dispatcher, rate limits, templates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi.templating import Jinja2Templates
    from sqlalchemy.engine import Engine

    from replenish.platform.ratelimit import TokenBucket
    from replenish.settings import Settings


@dataclass
class PlatformContext:
    settings: Settings
    engine: Engine
    dispatch: Callable[[list[str] | None], dict]
    login_limiter: TokenBucket
    api_limiter: TokenBucket
    templates: Jinja2Templates

    def now(self) -> dt.datetime:
        """The platform's "now": the shared clock (``replenish.clock``), the same the nightly run used."""
        from replenish import clock

        with self.engine.connect() as conn:
            return clock.now(conn)

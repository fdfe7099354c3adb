"""Model versions in the warehouse (schema ``forecast``) and the promotion rule.

A new model becomes current only if its backtest WAPE is strictly lower than the current model's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DDL = """
create schema if not exists forecast;
create table if not exists forecast.models (
    version         text primary key,
    created_at      timestamptz not null default now(),
    params          jsonb not null,
    feature_config  jsonb not null,
    train_start     date,
    train_end       date,
    backtest_metrics jsonb not null,
    backtest_wape   double precision not null,
    artifact_path   text not null,
    is_current      boolean not null default false
);
create unique index if not exists models_one_current on forecast.models (is_current) where is_current;
create table if not exists forecast.forecasts (
    store_id     bigint not null,
    item_id      bigint not null,
    origin_date  date not null,
    target_date  date not null,
    horizon      integer not null,
    p10          double precision not null,
    p50          double precision not null,
    p90          double precision not null,
    model_version text,
    is_flagged   boolean not null default false,
    run_id       text,
    primary key (origin_date, store_id, item_id, target_date)
);
"""


@dataclass
class ModelRecord:
    version: str
    backtest_wape: float
    artifact_path: str
    is_current: bool
    feature_config: dict
    train_end: object = None


def ensure_schema(engine: Engine) -> None:
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("select pg_advisory_xact_lock(784512)"))
        for stmt in DDL.split(";"):
            if stmt.strip():
                conn.execute(text(stmt))


def current_model(engine: Engine) -> ModelRecord | None:
    from sqlalchemy import text

    ensure_schema(engine)
    with engine.connect() as conn:
        r = conn.execute(text("select version, backtest_wape, artifact_path, is_current, feature_config, train_end "
                              "from forecast.models where is_current")).first()
    return ModelRecord(*r) if r else None


def register_model(engine: Engine, version: str, params: dict, feature_config: dict, train_start, train_end,
                   backtest_metrics: dict, artifact_path: str) -> bool:
    """Insert the version; promote it (atomically) iff its backtest WAPE beats the current one. Returns promoted."""
    from sqlalchemy import text

    ensure_schema(engine)
    wape = float(backtest_metrics["wape"])
    with engine.begin() as conn:
        conn.execute(text("lock table forecast.models in exclusive mode"))
        cur = conn.execute(text("select backtest_wape from forecast.models where is_current")).first()
        promote = cur is None or wape < float(cur[0])
        conn.execute(text(
            "insert into forecast.models (version, params, feature_config, train_start, train_end, backtest_metrics,"
            " backtest_wape, artifact_path, is_current) values (:v, cast(:p as jsonb), cast(:f as jsonb), :ts, :te,"
            " cast(:m as jsonb), :w, :a, false)"),
            {"v": version, "p": json.dumps(params), "f": json.dumps(feature_config), "ts": train_start,
             "te": train_end, "m": json.dumps(backtest_metrics, default=float), "w": wape, "a": str(artifact_path)})
        if promote:
            conn.execute(text("update forecast.models set is_current = false where is_current"))
            conn.execute(text("update forecast.models set is_current = true where version = :v"), {"v": version})
    return promote

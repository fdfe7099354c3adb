"""DDL for the raw layer, generated from ``replenish.extract.contract``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import text

from replenish.extract.contract import ENTITIES, EntitySpec

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

RAW_SCHEMA = "raw"
META_COLUMNS = ("_business_date", "_source_file", "_source_line", "_batch_id")
# Key indexes of the transaction tables whose staging key is not the business date: dbt's incremental staging
# (dbt_project/macros/incremental_staging.sql) looks up every version of a changed key through them.
KEY_INDEXES: dict[str, tuple[str, ...]] = {
    "pos_sales_lines": ("receipt_id",),
    "pos_waste_lines": ("store_id", "item_id", "waste_date"),
    "mms_purchase_orders": ("po_id", "line_no"),
    "mms_goods_receipts": ("receipt_no",),
    "mms_promotions": ("promotion_id",),
}
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"invalid SQL identifier {name!r}")
    return name


def entity_table_ddl(spec: EntitySpec, schema: str = RAW_SCHEMA) -> str:
    cols = [f"    {c.name} {c.pg_type}{' not null' if c.required else ''}" for c in spec.columns]
    cols += [
        "    _business_date date not null",
        "    _source_file text",
        "    _source_line integer",
        "    _batch_id uuid",
        "    _loaded_at timestamptz not null default now()",
    ]
    s, t = check_ident(schema), spec.name
    ddl = (
        f"create table if not exists {s}.{t} (\n" + ",\n".join(cols) + "\n);\n"
        f"create index if not exists {t}__business_date_idx on {s}.{t} (_business_date);\n"
    )
    if t in KEY_INDEXES:
        ddl += f"create index if not exists {t}__key_idx on {s}.{t} ({', '.join(KEY_INDEXES[t])});\n"
    return ddl


def raw_schema_ddl(schema: str = RAW_SCHEMA) -> str:
    s = check_ident(schema)
    parts = [f"create schema if not exists {s};"]
    parts += [entity_table_ddl(e, s) for e in ENTITIES]
    parts.append(
        f"""create table if not exists {s}.quarantine (
    batch_id uuid not null,
    business_date date not null,
    connector text not null,
    entity text,
    source_file text,
    line_no integer,
    field text,
    reason text not null,
    raw_record jsonb,
    quarantined_at timestamptz not null default now()
);
create index if not exists quarantine__day_idx on {s}.quarantine (business_date, entity);
create table if not exists {s}.load_batches (
    batch_id uuid primary key,
    business_date date not null,
    connector text not null,
    entity text not null,
    source_file text,
    rows_in_file integer not null,
    rows_loaded integer not null,
    rows_quarantined integer not null,
    loaded_at timestamptz not null default now(),
    constraint load_batches_rows_balance check (rows_loaded + rows_quarantined = rows_in_file)
);
create index if not exists load_batches__day_idx on {s}.load_batches (business_date, entity);"""
    )
    return "\n".join(parts)


def ensure_raw_schema(engine_or_conn: Engine | Connection, schema: str = RAW_SCHEMA) -> None:
    """Create schema ``raw`` and all raw tables if missing (idempotent)."""
    ddl = raw_schema_ddl(schema)
    if hasattr(engine_or_conn, "begin") and not hasattr(engine_or_conn, "in_transaction"):
        with engine_or_conn.begin() as conn:  # type: ignore[union-attr]
            _run(conn, ddl, schema)
    else:
        _run(engine_or_conn, ddl, schema)  # type: ignore[arg-type]


def _run(conn: Connection, ddl: str, schema: str) -> None:
    # serialise concurrent first-time creation (CREATE IF NOT EXISTS races on the catalog)
    conn.execute(text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": f"replenish.raw:{schema}"})
    conn.exec_driver_sql(ddl)

"""Where the loader writes: schema ``raw`` (defined by the migrations), or a scratch copy of its tables."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from replenish.extract.contract import ENTITIES

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

RAW_SCHEMA = "raw"
META_COLUMNS = ("_business_date", "_source_file", "_source_line", "_batch_id")
LOADER_TABLES = (*(e.name for e in ENTITIES), "quarantine", "load_batches")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"invalid SQL identifier {name!r}")
    return name


def prepare_raw_schema(engine: Engine, schema: str = RAW_SCHEMA) -> None:
    """Migrate the database; for another schema than ``raw`` (tests, benchmarks), copy the loader's tables there."""
    from replenish import migrations

    migrations.ensure_current(engine)
    if check_ident(schema) != RAW_SCHEMA:
        migrations.copy_tables(engine, RAW_SCHEMA, schema, LOADER_TABLES)

"""Extract: load the daily export files (docs/file-contract.md) into the raw layer."""

from replenish.extract.connectors import (
    Connector,
    CsvExportConnector,
    ExportFileError,
    MalformedRow,
    MmsDatabaseConnector,
    RawFrame,
    parse_csv_bytes,
    populate_mms_source,
)
from replenish.extract.contract import ENTITIES, Column, EntitySpec, entities_for, get_entity
from replenish.extract.loader import (
    EntityCounts,
    LoadInvariantError,
    LoadSummary,
    load_day,
    load_days,
    quarantined_rows,
    validate_frame,
)
from replenish.extract.schema import RAW_SCHEMA, prepare_raw_schema

__all__ = [
    "Column",
    "Connector",
    "CsvExportConnector",
    "ENTITIES",
    "EntityCounts",
    "EntitySpec",
    "ExportFileError",
    "LoadInvariantError",
    "LoadSummary",
    "MalformedRow",
    "MmsDatabaseConnector",
    "RAW_SCHEMA",
    "RawFrame",
    "entities_for",
    "get_entity",
    "load_day",
    "load_days",
    "parse_csv_bytes",
    "populate_mms_source",
    "prepare_raw_schema",
    "quarantined_rows",
    "validate_frame",
]

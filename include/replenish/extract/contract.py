"""The export file contract (docs/file-contract.md) as typed Python.

This module is the single source of truth for the raw layer: the loader validates against it and
``replenish.extract.schema`` generates the ``raw.<system>_<entity>`` DDL from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["text", "int", "numeric", "date", "timestamptz", "bool"]

PG_TYPES: dict[str, str] = {
    "text": "text",
    "int": "integer",
    "numeric": "numeric",
    "date": "date",
    "timestamptz": "timestamptz",
    "bool": "boolean",
}

INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1

# Years a date or timestamp of an export may carry. PostgreSQL takes far more (4713 BC..294276 AD), but a sale in
# year 1 or 9999 is a defect, and readers downstream (Python's datetime, pandas' nanosecond timestamps: 1677..2262)
# break on such values long after the load. The year is the one written in the file (before any UTC offset).
PLAUSIBLE_YEARS: tuple[int, int] = (1900, 2099)
# UTC offsets PostgreSQL's timestamptz input accepts (verified on PG 18: +15:59 loads, +16:00 is "time zone
# displacement out of range"; minutes 0..59).
MAX_UTC_OFFSET_MINUTES = 15 * 60 + 59


def _forbidden_chars(keep_tab: bool) -> str:
    """Characters a text value may not hold, as the inside of a regex character class (valid for Python's re, RE2
    and Rust's regex): NUL (PostgreSQL text cannot store it), the other C0 controls and DEL (invalid in HTML and
    XML; the web pages and EDIFACT/e-mail documents show these values), the C1 controls and the Unicode
    noncharacters (HTML parse errors). Line breaks too: a record is one line (a line break inside quotes is an
    unbalanced quote swallowing the following lines). A tab stays allowed in free text."""
    keep = {0x09} if keep_tab else set()
    ascii_ = "".join(f"\\x{c:02x}" for c in [*range(0x20), 0x7F] if c not in keep)
    # non-ASCII as literal characters: RE2 has no \u escape, Python's re has no \x{...}
    wide = [*range(0x80, 0xA0), *range(0xFDD0, 0xFDF0), *(p + o for p in range(0, 0x110000, 0x10000)
                                                          for o in (0xFFFE, 0xFFFF))]
    return ascii_ + "".join(chr(c) for c in wide)


FORBIDDEN_TEXT_CHARS = _forbidden_chars(keep_tab=True)  # text values of an export (names, labels, ids)
FORBIDDEN_ID_CHARS = _forbidden_chars(keep_tab=False)  # identifiers sent to the API


def describe_char(ch: str) -> str:
    """``U+0000`` for a character that must not be shown raw."""
    return f"U+{ord(ch):04X}"


@dataclass(frozen=True)
class Column:
    """One contract column. Bounds apply to int/numeric columns, allowed/pattern to text."""

    name: str
    type: ColumnType
    required: bool = False
    min: float | None = None
    min_inclusive: bool = True
    max: float | None = None
    max_inclusive: bool = True
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None  # full-match regular expression
    description: str = ""

    @property
    def pg_type(self) -> str:
        return PG_TYPES[self.type]

    def constraint_text(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{'>=' if self.min_inclusive else '>'} {self.min:g}")
        if self.max is not None:
            parts.append(f"{'<=' if self.max_inclusive else '<'} {self.max:g}")
        if self.allowed:
            parts.append("in " + "/".join(self.allowed))
        if self.pattern:
            parts.append(f"matches {self.pattern}")
        return ", ".join(parts)


@dataclass(frozen=True)
class EntitySpec:
    system: Literal["pos", "mms"]
    entity: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    kind: Literal["master", "transaction"] = "transaction"
    description: str = ""

    @property
    def name(self) -> str:
        """``<system>_<entity>``: the raw table name and the entity's identifier."""
        return f"{self.system}_{self.entity}"

    table_name = name

    @property
    def relative_path(self) -> str:
        return f"{self.system}/{self.entity}.csv"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def __post_init__(self) -> None:
        names = self.column_names
        missing = [k for k in self.key if k not in names]
        if missing or len(set(names)) != len(names):
            raise ValueError(f"bad spec {self.name}: key {missing} / duplicate columns")


def _c(name: str, type_: ColumnType, required: bool = True, **kw) -> Column:
    return Column(name, type_, required, **kw)


WEEKDAYS_PATTERN = r"[1-7](\|[1-7])*"
HHMM_PATTERN = r"([01][0-9]|2[0-3]):[0-5][0-9]"

ENTITIES: tuple[EntitySpec, ...] = (
    EntitySpec(
        "pos",
        "sales_lines",
        (
            _c("receipt_id", "text"),
            _c("store_id", "int"),
            _c("item_id", "int"),
            _c("sold_at", "timestamptz"),
            _c("quantity", "numeric", min=0),
            _c("unit_price", "numeric", min=0, min_inclusive=False),
            _c("amount", "numeric"),
            _c("weekday", "text", required=False, description="label as printed by the POS; untrusted"),
        ),
        key=("receipt_id",),
    ),
    EntitySpec(
        "pos",
        "stock_levels",
        (
            _c("store_id", "int"),
            _c("item_id", "int"),
            _c("snapshot_at", "timestamptz", description="store close, before write-off"),
            _c("on_hand_qty", "numeric", description="negative = defect (kept, flagged downstream)"),
        ),
        key=("store_id", "item_id"),
    ),
    EntitySpec(
        "pos",
        "waste_lines",
        (
            _c("store_id", "int"),
            _c("item_id", "int"),
            _c("waste_date", "date"),
            _c("quantity", "numeric", min=0),
            _c("reason", "text", allowed=("expired",)),
        ),
        key=("store_id", "item_id"),
    ),
    EntitySpec(
        "mms",
        "stores",
        (
            _c("store_id", "int"),
            _c("store_name", "text"),
            _c("city", "text"),
            _c("region", "text", description="holiday region"),
            _c("opened_date", "date"),
            _c("is_active", "bool"),
        ),
        key=("store_id",),
        kind="master",
    ),
    EntitySpec(
        "mms",
        "items",
        (
            _c("item_id", "int"),
            _c("item_name", "text"),
            _c("category", "text"),
            _c("shelf_life_days", "int", min=1),
            _c("unit_price", "numeric", min=0, min_inclusive=False),
            _c("unit_cost", "numeric", min=0, min_inclusive=False),
            _c("is_active", "bool"),
        ),
        key=("item_id",),
        kind="master",
    ),
    EntitySpec(
        "mms",
        "suppliers",
        (
            _c("supplier_id", "int"),
            _c("supplier_name", "text"),
            _c("channel", "text", allowed=("email", "api", "edifact")),
            _c("email", "text", required=False),
            _c("api_url", "text", required=False),
            _c("allows_auto_order", "bool"),
        ),
        key=("supplier_id",),
        kind="master",
    ),
    EntitySpec(
        "mms",
        "item_suppliers",
        (
            _c("item_id", "int"),
            _c("supplier_id", "int"),
            _c("pack_size", "int", min=1),
            _c("moq", "int", min=0),
            _c("min_order_value", "numeric", min=0),
            _c("lead_time_days", "int", min=0),
            _c("order_weekdays", "text", pattern=WEEKDAYS_PATTERN, description="ISO weekdays joined by |"),
            _c("cutoff_time", "text", pattern=HHMM_PATTERN, description="HH:MM local"),
            _c("max_order_qty", "int", required=False),
            _c("service_level", "numeric", min=0, min_inclusive=False, max=1, max_inclusive=False),
        ),
        key=("item_id", "supplier_id"),
        kind="master",
    ),
    EntitySpec(
        "mms",
        "purchase_orders",
        (
            _c("po_id", "text"),
            _c("line_no", "int"),
            _c("store_id", "int"),
            _c("supplier_id", "int"),
            _c("item_id", "int"),
            _c("order_date", "date"),
            _c("due_date", "date"),
            _c("quantity", "numeric", min=0, min_inclusive=False),
            _c("status", "text", allowed=("open", "received", "cancelled")),
        ),
        key=("po_id", "line_no"),
    ),
    EntitySpec(
        "mms",
        "goods_receipts",
        (
            _c("receipt_no", "text"),
            _c("po_id", "text"),
            _c("line_no", "int"),
            _c("store_id", "int"),
            _c("item_id", "int"),
            _c("received_date", "date"),
            _c("quantity", "numeric", min=0),
        ),
        key=("receipt_no",),
    ),
    EntitySpec(
        "mms",
        "promotions",
        (
            _c("promotion_id", "text"),
            _c("store_id", "int"),
            _c("item_id", "int"),
            _c("start_date", "date"),
            _c("end_date", "date"),
            _c("promo_type", "text"),
        ),
        key=("promotion_id",),
    ),
    EntitySpec(
        "mms",
        "calendar",
        (
            _c("calendar_date", "date"),
            _c("region", "text"),
            _c("weekday", "text", required=False, description="label; untrusted"),
            _c("is_public_holiday", "bool"),
            _c("is_school_holiday", "bool"),
        ),
        key=("calendar_date", "region"),
    ),
    EntitySpec(
        "mms",
        "weather",
        (
            _c("store_id", "int"),
            _c("weather_date", "date"),
            _c("rain_mm", "numeric"),
            _c("temperature_c", "numeric"),
            _c("is_forecast", "bool"),
        ),
        key=("store_id", "weather_date"),
    ),
)

ENTITY_BY_NAME: dict[str, EntitySpec] = {e.name: e for e in ENTITIES}


def get_entity(name: str, entity: str | None = None) -> EntitySpec:
    """``get_entity("pos_sales_lines")`` or ``get_entity("pos", "sales_lines")``."""
    key = f"{name}_{entity}" if entity else name
    try:
        return ENTITY_BY_NAME[key]
    except KeyError:
        raise KeyError(f"unknown entity {key!r}; known: {sorted(ENTITY_BY_NAME)}") from None


def entities_for(system: str | None = None) -> tuple[EntitySpec, ...]:
    return tuple(e for e in ENTITIES if system is None or e.system == system)


__all__ = [
    "Column",
    "ColumnType",
    "EntitySpec",
    "ENTITIES",
    "ENTITY_BY_NAME",
    "PG_TYPES",
    "get_entity",
    "entities_for",
    "INT4_MIN",
    "INT4_MAX",
    "PLAUSIBLE_YEARS",
    "MAX_UTC_OFFSET_MINUTES",
    "FORBIDDEN_TEXT_CHARS",
    "FORBIDDEN_ID_CHARS",
    "describe_char",
]

"""The quality suites as code: one list of checks, each a small GX suite on a query asset.

Every check names its severity (``blocking`` stops automation, ``warning`` is only reported),
its scope (``store``: only the stores found in the unexpected rows are blocked; ``global``:
a blocking failure blocks every store) and its target table. The batch of every check is a
query asset already filtered to the business date ``D``.

Conventions of the ``UnexpectedRowsExpectation`` queries (GX substitutes ``{batch}``):
* a query WITHOUT a ``JOIN`` gets ``{batch}`` as ``(<asset sql>) AS subselect`` -- never alias it;
* a query WITH a ``JOIN`` gets ``(<asset sql>)`` -- always alias it (``{batch} b``);
* no literal braces and no ``:name`` (SQLAlchemy bind syntax) -- casts use ``::``;
* store-scoped checks return one row per failing store with a ``store_id`` column, so the
  200-row fetch limit of GX is never hit before 200 failing stores (beyond that the gate runs
  the same query itself to get all store ids).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["blocking", "warning"]
Scope = Literal["store", "global"]

# Contract tables that carry ``_business_date`` (for the quarantine-rate denominator).
RAW_TABLES = (
    "pos_sales_lines", "pos_stock_levels", "pos_waste_lines",
    "mms_stores", "mms_items", "mms_suppliers", "mms_item_suppliers", "mms_purchase_orders",
    "mms_goods_receipts", "mms_promotions", "mms_calendar", "mms_weather",
)

# Labels accepted for each ISO weekday (1 = Monday): number, English, German, short forms.
WEEKDAY_LABELS: dict[int, tuple[str, ...]] = {
    1: ("1", "monday", "mon", "mo", "montag"),
    2: ("2", "tuesday", "tue", "tues", "tu", "di", "dienstag"),
    3: ("3", "wednesday", "wed", "we", "mi", "mittwoch"),
    4: ("4", "thursday", "thu", "thur", "thurs", "th", "do", "donnerstag"),
    5: ("5", "friday", "fri", "fr", "freitag"),
    6: ("6", "saturday", "sat", "sa", "samstag", "sonnabend"),
    7: ("7", "sunday", "sun", "su", "so", "sonntag"),
}
LABEL_TO_ISO: dict[str, int] = {lbl: iso for iso, lbls in WEEKDAY_LABELS.items() for lbl in lbls}


@dataclass(frozen=True)
class QualityParams:
    """Thresholds and schema names (schemas overridable for scratch databases)."""

    raw_schema: str = "raw"
    marts_schema: str = "marts"
    timezone: str = "Europe/Berlin"
    spike_factor: float = 4.0          # D quantity > factor * mean(last 28 days) + additive
    spike_additive: float = 20.0
    spike_history_days: int = 28
    spike_min_history_days: int = 7    # the store needs this many loaded days of history
    max_quarantine_rate: float = 0.02  # quarantined / (quarantined + loaded rows) for D


@dataclass(frozen=True)
class Ctx:
    business_date: dt.date
    params: QualityParams = field(default_factory=QualityParams)
    existing_tables: frozenset[str] = frozenset()   # schema.table names that exist

    def physical(self, logical: str) -> str:
        """``raw.x``/``marts.x`` -> the configured schema."""
        schema, _, table = logical.partition(".")
        if schema == "raw":
            return self.raw(table)
        if schema == "marts":
            return self.marts(table)
        return logical

    @property
    def d(self) -> str:
        return f"DATE '{self.business_date.isoformat()}'"

    def raw(self, table: str) -> str:
        return f"{self.params.raw_schema}.{table}"

    def marts(self, table: str) -> str:
        return f"{self.params.marts_schema}.{table}"

    @property
    def tz(self) -> str:
        return "'" + self.params.timezone.replace("'", "''") + "'"

    def active_stores_sql(self) -> str:
        """Active, opened stores of the latest store master on or before D."""
        s = self.raw("mms_stores")
        return (
            f"SELECT DISTINCT store_id FROM {s} WHERE is_active AND opened_date <= {self.d} "
            f"AND _business_date = (SELECT max(_business_date) FROM {s} WHERE _business_date <= {self.d})"
        )


@dataclass(frozen=True)
class Check:
    name: str
    severity: Severity
    scope: Scope
    target: str                                   # table the check is about (schema.table)
    description: str
    asset_sql: Callable[[Ctx], str]               # the batch: target filtered to D
    expectations: Callable[[Ctx], list[Any]]      # GX expectations on that batch
    requires: Callable[[Ctx], tuple[str, ...]] = lambda c: ()  # other tables the SQL reads


def _raw_d(table: str, extra_cols: str = "") -> Callable[[Ctx], str]:
    def sql(c: Ctx) -> str:
        cols = "*" + (f", {extra_cols}" if extra_cols else "")
        return f"SELECT {cols} FROM {c.raw(table)} WHERE _business_date = {c.d}"
    return sql


def _per_store(where: str, aggregates: str) -> str:
    return f"SELECT store_id, {aggregates} FROM {{batch}} WHERE {where} GROUP BY store_id"


def _x() -> Any:
    """``great_expectations.expectations`` (imported lazily: importing GX takes seconds)."""
    from great_expectations import expectations

    return expectations

# ---------------------------------------------------------------------------------------------
# the checks


def _stores_master(c: Ctx) -> list[Any]:
    return [
        _x().ExpectTableRowCountToBeBetween(min_value=1),
        _x().ExpectColumnValuesToNotBeNull(column="store_id"),
        _x().ExpectColumnValuesToBeUnique(column="store_id"),
    ]


def _missing_store_days(c: Ctx) -> list[Any]:
    q = (
        "SELECT b.store_id, 0 AS sales_lines, 0 AS stock_rows FROM {batch} b "
        f"LEFT JOIN (SELECT DISTINCT store_id FROM {c.raw('pos_sales_lines')} WHERE _business_date = {c.d}) s "
        "ON s.store_id = b.store_id "
        f"LEFT JOIN (SELECT DISTINCT store_id FROM {c.raw('pos_stock_levels')} WHERE _business_date = {c.d}) k "
        "ON k.store_id = b.store_id "
        "WHERE s.store_id IS NULL AND k.store_id IS NULL"
    )
    return [_x().UnexpectedRowsExpectation(unexpected_rows_query=q,
                                        description="active store without sales lines and without stock snapshot")]


def _stock_freshness(c: Ctx) -> list[Any]:
    stale = f"(b.snapshot_at AT TIME ZONE {c.tz})::date <> {c.d}"
    q = (
        "SELECT a.store_id, count(b.store_id) AS snapshot_rows, "
        f"count(b.store_id) FILTER (WHERE {stale}) AS stale_rows, "
        "min(b.snapshot_at)::text AS min_snapshot_at, max(b.snapshot_at)::text AS max_snapshot_at "
        f"FROM ({c.active_stores_sql()} UNION "
        f"SELECT DISTINCT store_id FROM {c.raw('pos_stock_levels')} WHERE _business_date = {c.d}) a "
        "LEFT JOIN {batch} b ON b.store_id = a.store_id "
        "GROUP BY a.store_id "
        f"HAVING count(b.store_id) = 0 OR count(b.store_id) FILTER (WHERE {stale}) > 0"
    )
    return [
        _x().UnexpectedRowsExpectation(unexpected_rows_query=q,
                                    description="store without a stock snapshot dated D"),
        _x().ExpectColumnPairValuesToBeEqual(column_A="snapshot_date", column_B="_business_date"),
        _x().ExpectColumnValuesToNotBeNull(column="snapshot_at"),
    ]


def _negative_stock(c: Ctx) -> list[Any]:
    return [
        _x().ExpectColumnValuesToBeBetween(column="on_hand_qty", min_value=0),
        _x().ExpectColumnValuesToNotBeNull(column="on_hand_qty"),
        _x().UnexpectedRowsExpectation(unexpected_rows_query=_per_store(
            "on_hand_qty < 0 OR on_hand_qty IS NULL",
            "count(*) AS bad_rows, min(on_hand_qty) AS min_on_hand_qty")),
    ]


def _duplicate_receipts(c: Ctx) -> list[Any]:
    return [
        _x().ExpectColumnValuesToNotBeNull(column="receipt_id"),
        _x().ExpectColumnValuesToBeUnique(column="receipt_id"),
        _x().UnexpectedRowsExpectation(unexpected_rows_query=(
            "SELECT receipt_id, count(*) AS copies, array_agg(DISTINCT store_id) AS store_ids "
            "FROM {batch} GROUP BY receipt_id HAVING count(*) > 1")),
    ]


def _sales_prices(c: Ctx) -> list[Any]:
    return [
        _x().ExpectColumnValuesToNotBeNull(column="unit_price"),
        _x().ExpectColumnValuesToBeBetween(column="unit_price", min_value=0, strict_min=True),
        _x().UnexpectedRowsExpectation(unexpected_rows_query=_per_store(
            "unit_price <= 0 OR unit_price IS NULL",
            "count(*) AS bad_rows, min(unit_price) AS min_unit_price")),
    ]


def _item_prices(c: Ctx) -> list[Any]:
    return [
        _x().ExpectTableRowCountToBeBetween(min_value=1),
        _x().ExpectColumnValuesToNotBeNull(column="unit_price"),
        _x().ExpectColumnValuesToBeBetween(column="unit_price", min_value=0, strict_min=True),
    ]


def _sales_spike(c: Ctx) -> list[Any]:
    p = c.params
    hist = c.raw("pos_sales_lines")
    lo = f"{c.d} - {int(p.spike_history_days)}"
    q = (
        "SELECT t.store_id, t.item_id, t.qty, round(coalesce(h.qty_sum, 0) / "
        f"{int(p.spike_history_days)}.0, 3) AS mean_qty "
        "FROM (SELECT store_id, item_id, sum(quantity) AS qty FROM {batch} b GROUP BY store_id, item_id) t "
        f"JOIN (SELECT store_id FROM {hist} WHERE _business_date >= {lo} AND _business_date < {c.d} "
        f"GROUP BY store_id HAVING count(DISTINCT _business_date) >= {int(p.spike_min_history_days)}) s "
        "ON s.store_id = t.store_id "
        f"LEFT JOIN (SELECT store_id, item_id, sum(quantity) AS qty_sum FROM {hist} "
        f"WHERE _business_date >= {lo} AND _business_date < {c.d} GROUP BY store_id, item_id) h "
        "ON h.store_id = t.store_id AND h.item_id = t.item_id "
        f"WHERE t.qty > {float(p.spike_factor)} * coalesce(h.qty_sum, 0) / {int(p.spike_history_days)}.0 "
        f"+ {float(p.spike_additive)} "
        "ORDER BY t.store_id, t.item_id"
    )
    return [_x().UnexpectedRowsExpectation(unexpected_rows_query=q,
                                        description="store-item quantity far above its 28-day mean")]


def _weekday_labels(c: Ctx) -> list[Any]:
    cases = " ".join(
        f"WHEN {iso} THEN ARRAY[{', '.join(repr(x) for x in lbls)}]" for iso, lbls in WEEKDAY_LABELS.items()
    )
    q = (
        "SELECT calendar_date, region, weekday AS label, extract(isodow FROM calendar_date)::int AS iso_weekday "
        "FROM {batch} WHERE weekday IS NOT NULL AND trim(weekday) <> '' "
        f"AND lower(trim(weekday)) <> ALL (CASE extract(isodow FROM calendar_date)::int {cases} END) "
        "ORDER BY calendar_date, region"
    )
    return [_x().UnexpectedRowsExpectation(unexpected_rows_query=q,
                                        description="weekday label differs from the date's weekday")]


def _quarantine_rate(c: Ctx) -> list[Any]:
    # the denominator reads only the raw tables that exist
    loaded = " + ".join(
        f"(SELECT count(*) FROM {c.raw(t)} WHERE _business_date = {c.d})"
        for t in RAW_TABLES if c.raw(t) in c.existing_tables
    ) or "0"
    thr = float(c.params.max_quarantine_rate)
    q = (
        "SELECT q.quarantined, t.loaded, "
        "round(q.quarantined::numeric / nullif(q.quarantined + t.loaded, 0), 4) AS rate "
        "FROM (SELECT count(*) AS quarantined FROM {batch} b) q "
        f"CROSS JOIN (SELECT {loaded} AS loaded) t "
        f"WHERE q.quarantined > {thr} * (q.quarantined + t.loaded)"
    )
    return [_x().UnexpectedRowsExpectation(unexpected_rows_query=q,
                                        description=f"quarantine rate above {thr:.1%}")]


def _mart_units(c: Ctx) -> list[Any]:
    return [
        _x().ExpectColumnValuesToNotBeNull(column="units_sold"),
        _x().ExpectColumnValuesToBeBetween(column="units_sold", min_value=0),
        _x().UnexpectedRowsExpectation(unexpected_rows_query=_per_store(
            "(units_sold < 0 OR units_sold IS NULL) AND store_id IS NOT NULL",
            "count(*) AS bad_rows, min(units_sold) AS min_units_sold")),
    ]


def _mart_keys(c: Ctx) -> list[Any]:
    return [
        _x().ExpectTableRowCountToBeBetween(min_value=1),
        _x().ExpectColumnValuesToNotBeNull(column="store_id"),
        _x().ExpectColumnValuesToNotBeNull(column="item_id"),
        _x().ExpectColumnValuesToNotBeNull(column="demand_date"),
        _x().ExpectCompoundColumnsToBeUnique(column_list=["store_id", "item_id", "demand_date"]),
    ]


def _mart_d(c: Ctx) -> str:
    return f"SELECT * FROM {c.marts('fct_daily_demand')} WHERE demand_date = {c.d}"


def _sales_stock(c: Ctx) -> tuple[str, ...]:
    return (c.raw("pos_sales_lines"), c.raw("pos_stock_levels"))


CHECKS: tuple[Check, ...] = (
    Check("stores_master_present", "blocking", "global", "raw.mms_stores",
          "the store master for D is delivered, keyed and non-empty",
          _raw_d("mms_stores"), _stores_master),
    Check("missing_store_days", "blocking", "store", "raw.mms_stores",
          "every active store has sales lines or a stock snapshot for D",
          lambda c: f"SELECT store_id FROM ({c.active_stores_sql()}) s", _missing_store_days,
          requires=_sales_stock),
    Check("stock_snapshot_freshness", "blocking", "store", "raw.pos_stock_levels",
          "every active store has a stock snapshot for D, taken on D",
          lambda c: (f"SELECT *, (snapshot_at AT TIME ZONE {c.tz})::date AS snapshot_date "
                     f"FROM {c.raw('pos_stock_levels')} WHERE _business_date = {c.d}"),
          _stock_freshness, requires=lambda c: (c.raw("mms_stores"),)),
    Check("negative_stock", "blocking", "store", "raw.pos_stock_levels",
          "on_hand_qty >= 0", _raw_d("pos_stock_levels"), _negative_stock),
    Check("duplicate_receipts", "blocking", "global", "raw.pos_sales_lines",
          "receipt_id unique among D's sales lines", _raw_d("pos_sales_lines"), _duplicate_receipts),
    Check("sales_prices_positive", "blocking", "store", "raw.pos_sales_lines",
          "sales unit_price > 0", _raw_d("pos_sales_lines"), _sales_prices),
    Check("item_prices_positive", "blocking", "global", "raw.mms_items",
          "item master unit_price > 0 (and the master is delivered)", _raw_d("mms_items"), _item_prices),
    Check("mart_daily_demand_keys", "blocking", "global", "marts.fct_daily_demand",
          "fct_daily_demand for D: rows exist, keys not null and unique",
          _mart_d, _mart_keys),
    Check("mart_units_sold_non_negative", "blocking", "store", "marts.fct_daily_demand",
          "fct_daily_demand for D: units_sold not null and >= 0", _mart_d, _mart_units),
    Check("sales_spike", "warning", "store", "raw.pos_sales_lines",
          "store-item quantity on D > 4 x its 28-day mean + 20 (stores with >= 7 days of history)",
          _raw_d("pos_sales_lines"), _sales_spike),
    Check("weekday_label_consistency", "warning", "global", "raw.mms_calendar",
          "calendar weekday label matches the date's real weekday (warehouse derives weekday from the date)",
          _raw_d("mms_calendar"), _weekday_labels),
    Check("quarantine_rate", "warning", "global", "raw.quarantine",
          "share of D's rows rejected into raw.quarantine stays below the threshold",
          lambda c: f"SELECT * FROM {c.raw('quarantine')} WHERE business_date = {c.d}",
          _quarantine_rate),
)


def check_catalog() -> list[dict[str, str]]:
    """The check list (name, severity, scope, target, description) for docs and the CLI."""
    return [
        {"name": c.name, "severity": c.severity, "scope": c.scope, "target": c.target,
         "description": c.description}
        for c in CHECKS
    ]

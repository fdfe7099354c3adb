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

from pydantic_settings import BaseSettings, SettingsConfigDict

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


class QualityParams(BaseSettings):
    """Thresholds and schema names (schemas overridable for scratch databases).

    Typed settings: every field can be set from the environment as ``REPLENISH_QUALITY_<FIELD>``
    (e.g. ``REPLENISH_QUALITY_MAX_UNIT_PRICE=250``); explicit arguments win over the environment.
    """

    model_config = SettingsConfigDict(env_prefix="REPLENISH_QUALITY_", frozen=True, extra="ignore")

    raw_schema: str = "raw"
    marts_schema: str = "marts"
    # None: the platform's business time zone (Settings.timezone), the one source of it
    timezone: str | None = None
    spike_factor: float = 4.0          # D quantity > factor * mean(last 28 days) + additive
    spike_additive: float = 20.0
    spike_history_days: int = 28
    spike_min_history_days: int = 7    # the store needs this many loaded days of history
    max_quarantine_rate: float = 0.02  # quarantined / (quarantined + loaded rows) for D
    # Plausible ranges of a sales line. A price is checked absolutely and against the item master's price
    # (a promotion discounts, it does not divide by 1,000); a quantity absolutely (the POS lines are a store's
    # daily item totals, so the bound is generous: it catches overflowed or unit-confused values, not a good day).
    min_unit_price: float = 0.01
    max_unit_price: float = 10_000.0
    min_price_ratio: float = 0.2       # unit price / item master price
    max_price_ratio: float = 5.0
    max_line_quantity: float = 100_000.0
    max_on_hand_qty: float = 1_000_000.0
    # Sales collapse: a store's units on D below ratio x the median of the same weekday over the last
    # `collapse_weeks` weeks (public holidays of the store's region left out on both sides), unless the stock
    # snapshots say the goods did not leave the shelves either (a closed store, a sold-out store).
    collapse_ratio: float = 0.25
    collapse_weeks: int = 8
    collapse_min_weeks: int = 4        # same-weekday days the store needs in that window to be judged
    collapse_min_baseline_units: float = 20.0
    max_quarantined_rows_per_store: int = 0   # POS rows of a store rejected into quarantine for D


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
        tz = self.params.timezone
        if tz is None:
            from replenish.settings import get_settings

            tz = get_settings().timezone
        return "'" + tz.replace("'", "''") + "'"

    def latest_master_sql(self, table: str, columns: str) -> str:
        """``columns`` of the latest delivery of a master table on or before D."""
        t = self.raw(table)
        return (f"SELECT {columns} FROM {t} "
                f"WHERE _business_date = (SELECT max(_business_date) FROM {t} WHERE _business_date <= {self.d})")

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


def _stock_in_range(c: Ctx) -> list[Any]:
    hi = float(c.params.max_on_hand_qty)
    return [
        _x().ExpectColumnValuesToNotBeNull(column="on_hand_qty"),
        _x().ExpectColumnValuesToBeBetween(column="on_hand_qty", min_value=0, max_value=hi),
        _x().UnexpectedRowsExpectation(unexpected_rows_query=_per_store(
            f"on_hand_qty < 0 OR on_hand_qty > {hi} OR on_hand_qty IS NULL",
            "count(*) AS bad_rows, min(on_hand_qty) AS min_on_hand_qty, max(on_hand_qty) AS max_on_hand_qty")),
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
    p = c.params
    lo, hi = float(p.min_unit_price), float(p.max_unit_price)
    rlo, rhi = float(p.min_price_ratio), float(p.max_price_ratio)
    bad = (f"unit_price IS NULL OR unit_price < {lo} OR unit_price > {hi} OR (item_price > 0 AND "
           f"(unit_price < {rlo} * item_price OR unit_price > {rhi} * item_price))")
    return [
        _x().ExpectColumnValuesToNotBeNull(column="unit_price"),
        _x().ExpectColumnValuesToBeBetween(column="unit_price", min_value=lo, max_value=hi),
        _x().UnexpectedRowsExpectation(unexpected_rows_query=_per_store(
            bad, "count(*) AS bad_rows, min(unit_price) AS min_unit_price, max(unit_price) AS max_unit_price, "
                 "string_agg(DISTINCT item_id::text, ',') AS item_ids, "
                 "min(item_price) AS min_item_price, max(item_price) AS max_item_price")),
    ]


def _sales_prices_asset(c: Ctx) -> str:
    items = c.latest_master_sql("mms_items", "item_id, max(unit_price) AS item_price") + " GROUP BY item_id"
    return (f"SELECT s.*, i.item_price FROM {c.raw('pos_sales_lines')} s LEFT JOIN ({items}) i "
            f"ON i.item_id = s.item_id WHERE s._business_date = {c.d}")


def _sales_quantities(c: Ctx) -> list[Any]:
    hi = float(c.params.max_line_quantity)
    return [
        _x().ExpectColumnValuesToNotBeNull(column="quantity"),
        _x().ExpectColumnValuesToBeBetween(column="quantity", min_value=0, max_value=hi),
        _x().UnexpectedRowsExpectation(unexpected_rows_query=_per_store(
            f"quantity IS NULL OR quantity < 0 OR quantity > {hi}",
            "count(*) AS bad_rows, min(quantity) AS min_quantity, max(quantity) AS max_quantity, "
            "string_agg(DISTINCT item_id::text, ',') AS item_ids")),
    ]


def _sales_outside_day(c: Ctx) -> list[Any]:
    # One row per store with any line sold outside D (local time): how many, which days, first and last local time.
    bad = f"sold_on IS DISTINCT FROM {c.d}"
    q = (
        f"SELECT store_id, count(*) FILTER (WHERE {bad}) AS bad_rows, count(*) AS rows_total, "
        f"string_agg(DISTINCT sold_on::text, ',') FILTER (WHERE {bad}) AS sold_on_days, "
        f"min(sold_at AT TIME ZONE {c.tz}) FILTER (WHERE {bad})::text AS first_sold_at, "
        f"max(sold_at AT TIME ZONE {c.tz}) FILTER (WHERE {bad})::text AS last_sold_at "
        f"FROM {{batch}} GROUP BY store_id HAVING count(*) FILTER (WHERE {bad}) > 0"
    )
    return [
        _x().ExpectColumnValuesToNotBeNull(column="sold_at"),
        _x().UnexpectedRowsExpectation(unexpected_rows_query=q,
                                       description="sales lines sold outside the business day (local time)"),
    ]


def _unknown_keys(c: Ctx) -> list[Any]:
    stores = c.latest_master_sql("mms_stores", "DISTINCT store_id")
    items = c.latest_master_sql("mms_items", "DISTINCT item_id")
    q = (
        "SELECT b.store_id, count(*) AS bad_rows, bool_or(s.store_id IS NULL) AS unknown_store, "
        "count(*) FILTER (WHERE i.item_id IS NULL) AS unknown_item_rows, "
        "string_agg(DISTINCT b.item_id::text, ',') FILTER (WHERE i.item_id IS NULL) AS unknown_item_ids, "
        "string_agg(DISTINCT b.source, ',') AS sources "
        f"FROM {{batch}} b LEFT JOIN ({stores}) s ON s.store_id = b.store_id "
        f"LEFT JOIN ({items}) i ON i.item_id = b.item_id "
        "WHERE s.store_id IS NULL OR i.item_id IS NULL GROUP BY b.store_id ORDER BY b.store_id"
    )
    return [_x().UnexpectedRowsExpectation(
        unexpected_rows_query=q, description="sales or stock rows of a store or item the masters do not know")]


def _unknown_keys_asset(c: Ctx) -> str:
    return (f"SELECT 'sales' AS source, store_id, item_id FROM {c.raw('pos_sales_lines')} WHERE _business_date = {c.d} "
            f"UNION ALL SELECT 'stock' AS source, store_id, item_id FROM {c.raw('pos_stock_levels')} "
            f"WHERE _business_date = {c.d}")


def _masters(c: Ctx) -> tuple[str, ...]:
    return (c.raw("mms_stores"), c.raw("mms_items"))


def _collapse_asset(c: Ctx) -> str:
    """One row per store judged on D: its units, the same-weekday baseline, the stock movement, the holiday flag.

    The baseline is the median of the store's total units on the same weekday over the last ``collapse_weeks``
    weeks, over the days whose sales file was loaded (a store with no line that day counts 0) and that were not
    a public holiday in the store's region. The stock movement is what left the shelves on D according to the
    stock snapshots: closing stock of D-1 - waste of D-1 + goods received on D - closing stock of D (NULL when a
    snapshot is missing); sales far below the baseline are only explained when it is low as well.
    """
    p, d = c.params, c.d
    sales, stock = c.raw("pos_sales_lines"), c.raw("pos_stock_levels")
    weeks = int(p.collapse_weeks)
    stores = c.latest_master_sql("mms_stores", "DISTINCT ON (store_id) store_id, region") + \
        f" AND is_active AND opened_date <= {d} ORDER BY store_id, region"
    # GX query assets must start with SELECT: the CTEs go into a derived table
    return f"""SELECT * FROM (
WITH st AS ({stores}),
days AS (SELECT ({d} - 7 * k)::date AS day FROM generate_series(0, {weeks}) AS k),
loaded AS (SELECT day FROM days WHERE day = {d}
           OR EXISTS (SELECT 1 FROM {sales} s WHERE s._business_date = days.day)),
cal AS (SELECT DISTINCT ON (calendar_date, region) calendar_date, region, is_public_holiday
        FROM {c.raw('mms_calendar')} WHERE calendar_date IN (SELECT day FROM days) AND _business_date <= {d}
        ORDER BY calendar_date, region, _business_date DESC),
units AS (SELECT _business_date AS day, store_id, sum(quantity) AS units FROM {sales}
          WHERE _business_date IN (SELECT day FROM loaded) GROUP BY 1, 2),
grid AS (SELECT st.store_id, l.day, coalesce(u.units, 0) AS units, coalesce(cal.is_public_holiday, false) AS holiday
         FROM st CROSS JOIN loaded l
         LEFT JOIN units u ON u.store_id = st.store_id AND u.day = l.day
         LEFT JOIN cal ON cal.calendar_date = l.day AND cal.region = st.region),
base AS (SELECT store_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY units) AS baseline, count(*) AS weeks
         FROM grid WHERE day < {d} AND NOT holiday GROUP BY store_id),
moves AS (SELECT store_id, sum(q) AS left_units, count(*) FILTER (WHERE kind = 'close_prev') AS prev_rows,
                 count(*) FILTER (WHERE kind = 'close') AS rows_d
          FROM (SELECT 'close_prev' AS kind, store_id, on_hand_qty AS q FROM {stock} WHERE _business_date = {d} - 1
                UNION ALL SELECT 'waste_prev', store_id, -quantity FROM {c.raw('pos_waste_lines')}
                          WHERE _business_date = {d} - 1
                UNION ALL SELECT 'received', store_id, quantity FROM {c.raw('mms_goods_receipts')}
                          WHERE _business_date = {d} AND received_date = {d}
                UNION ALL SELECT 'close', store_id, -on_hand_qty FROM {stock} WHERE _business_date = {d}) m
          GROUP BY store_id)
SELECT g.store_id, st.region, extract(isodow FROM g.day)::int AS iso_weekday, g.units, g.holiday,
       round(b.baseline::numeric, 1) AS baseline, coalesce(b.weeks, 0) AS weeks,
       CASE WHEN m.prev_rows > 0 AND m.rows_d > 0 THEN m.left_units END AS left_units
FROM grid g JOIN st ON st.store_id = g.store_id
LEFT JOIN base b ON b.store_id = g.store_id LEFT JOIN moves m ON m.store_id = g.store_id
WHERE g.day = {d}) AS collapse"""


def _sales_collapse(c: Ctx) -> list[Any]:
    p = c.params
    r = float(p.collapse_ratio)
    q = (
        "SELECT store_id, units, baseline, weeks, left_units, iso_weekday FROM {batch} "
        f"WHERE NOT holiday AND weeks >= {int(p.collapse_min_weeks)} "
        f"AND baseline >= {float(p.collapse_min_baseline_units)} AND units < {r} * baseline "
        f"AND (left_units IS NULL OR left_units >= {r} * baseline) ORDER BY store_id"
    )
    return [_x().UnexpectedRowsExpectation(
        unexpected_rows_query=q,
        description="store's units far below its usual level for the weekday while its stock did go down")]


def _collapse_requires(c: Ctx) -> tuple[str, ...]:
    return tuple(c.raw(t) for t in ("pos_sales_lines", "pos_waste_lines", "mms_goods_receipts", "mms_calendar",
                                    "mms_stores"))


def _quarantined_rows(c: Ctx) -> list[Any]:
    # store_id as the export spelled it: only plain integers are attributed (the rest is the quarantine rate's)
    sid = "raw_record ->> 'store_id'"
    q = (
        f"SELECT trim({sid})::bigint AS store_id, count(*) AS bad_rows, "
        "string_agg(DISTINCT entity, ',') AS entities, string_agg(DISTINCT coalesce(field, '?'), ',') AS fields, "
        "min(reason) AS first_reason, min(line_no) AS first_line "
        f"FROM {{batch}} WHERE trim({sid}) ~ '^[0-9]+$' AND length(trim({sid})) <= 9 "
        f"GROUP BY 1 HAVING count(*) > {int(c.params.max_quarantined_rows_per_store)} ORDER BY 1"
    )
    return [_x().UnexpectedRowsExpectation(unexpected_rows_query=q,
                                           description="store's POS rows rejected into raw.quarantine")]


def _item_prices(c: Ctx) -> list[Any]:
    p = c.params
    return [
        _x().ExpectTableRowCountToBeBetween(min_value=1),
        _x().ExpectColumnValuesToNotBeNull(column="unit_price"),
        _x().ExpectColumnValuesToBeBetween(column="unit_price", min_value=float(p.min_unit_price),
                                           max_value=float(p.max_unit_price)),
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
    Check("stock_in_range", "blocking", "store", "raw.pos_stock_levels",
          "0 <= on_hand_qty <= max_on_hand_qty", _raw_d("pos_stock_levels"), _stock_in_range),
    Check("duplicate_receipts", "blocking", "store", "raw.pos_sales_lines",
          "receipt_id unique among D's sales lines (the stores holding a duplicate are blocked)",
          _raw_d("pos_sales_lines"), _duplicate_receipts),
    Check("sales_outside_business_day", "blocking", "store", "raw.pos_sales_lines",
          "every sales line of D's file was sold on D (local time): not another day's file, no timestamps "
          "outside the business day",
          lambda c: (f"SELECT *, (sold_at AT TIME ZONE {c.tz})::date AS sold_on "
                     f"FROM {c.raw('pos_sales_lines')} WHERE _business_date = {c.d}"),
          _sales_outside_day),
    Check("sales_prices_in_range", "blocking", "store", "raw.pos_sales_lines",
          "sales unit_price within [min_unit_price, max_unit_price] and within [min_price_ratio, max_price_ratio] "
          "x the item master's price", _sales_prices_asset, _sales_prices, requires=lambda c: (c.raw("mms_items"),)),
    Check("sales_quantities_in_range", "blocking", "store", "raw.pos_sales_lines",
          "sales quantity within [0, max_line_quantity]", _raw_d("pos_sales_lines"), _sales_quantities),
    Check("unknown_stores_items", "blocking", "store", "raw.pos_sales_lines",
          "sales and stock rows name stores and items of the latest masters",
          _unknown_keys_asset, _unknown_keys, requires=lambda c: (c.raw("pos_stock_levels"), *_masters(c))),
    Check("sales_collapse", "blocking", "store", "raw.pos_sales_lines",
          "store's units on D not below collapse_ratio x the median of its last same weekdays (holidays left "
          "out), unless the stock snapshots show the goods did not leave the shelves (closed, sold out)",
          _collapse_asset, _sales_collapse, requires=lambda c: (c.raw("pos_stock_levels"), *_collapse_requires(c))),
    Check("quarantined_store_rows", "blocking", "store", "raw.quarantine",
          "no POS row of the store rejected into raw.quarantine for D (its day would be incomplete)",
          lambda c: (f"SELECT * FROM {c.raw('quarantine')} WHERE business_date = {c.d} "
                     "AND entity IN ('pos_sales_lines', 'pos_stock_levels', 'pos_waste_lines')"),
          _quarantined_rows),
    Check("item_prices_in_range", "blocking", "global", "raw.mms_items",
          "item master unit_price within [min_unit_price, max_unit_price] (and the master is delivered)",
          _raw_d("mms_items"), _item_prices),
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

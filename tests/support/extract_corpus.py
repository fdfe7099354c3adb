"""A corpus of malformed export files (docs/file-contract.md), each with what is wrong and what the loader must do.

Every case replaces one file of an otherwise valid export day (``extract_fixtures.write_export_day``) and expects
either quarantined rows (line, field, words of the reason) or the whole file refused (line, words of the message).
``tests/test_extract_corpus.py`` runs them through the real loader against the real database.

    from support.extract_corpus import CASES, Quarantined, Refused
"""

from __future__ import annotations

from dataclasses import dataclass, field

from replenish.extract.contract import get_entity


@dataclass(frozen=True)
class Quarantined:
    line: int
    field: str | None
    reason: str  # words the reason must contain


@dataclass(frozen=True)
class Refused:
    line: int | None
    message: str  # words the error must contain
    column: str | None = None


@dataclass(frozen=True)
class Case:
    name: str
    file: str  # system/entity.csv, the file replaced (None content = file left out)
    problem: str  # what is wrong, in words
    content: str | bytes | None
    expect: tuple[Quarantined, ...] | Refused
    records: int | None = None  # records in the file when a record spans lines (default: non-blank lines - 1)
    loaded: dict[str, str] = field(default_factory=dict)  # a value that must load as given: "column": "text"

    @property
    def refused(self) -> bool:
        return isinstance(self.expect, Refused)


# One valid row per file; "{n}" makes the key of the n-th row unique.
GOOD: dict[str, dict[str, str]] = {
    "pos/sales_lines.csv": {"receipt_id": "R{n}", "store_id": "1", "item_id": "100",
                            "sold_at": "2019-04-29T09:15:00+02:00", "quantity": "2", "unit_price": "1.49",
                            "amount": "2.98", "weekday": "Mon"},
    "pos/stock_levels.csv": {"store_id": "1", "item_id": "10{n}", "snapshot_at": "2019-04-29T20:00:00+02:00",
                             "on_hand_qty": "12"},
    "pos/waste_lines.csv": {"store_id": "1", "item_id": "10{n}", "waste_date": "2019-04-29", "quantity": "1",
                            "reason": "expired"},
    "mms/stores.csv": {"store_id": "{n}", "store_name": "Markt {n}", "city": "Hamburg", "region": "HH",
                       "opened_date": "2015-03-01", "is_active": "true"},
    "mms/items.csv": {"item_id": "10{n}", "item_name": "Milk 1L", "category": "dairy", "shelf_life_days": "7",
                      "unit_price": "1.49", "unit_cost": "0.95", "is_active": "true"},
    "mms/suppliers.csv": {"supplier_id": "1{n}", "supplier_name": "Dairy Co", "channel": "email",
                          "email": "orders@dairy.example", "api_url": "", "allows_auto_order": "true"},
    "mms/item_suppliers.csv": {"item_id": "10{n}", "supplier_id": "10", "pack_size": "6", "moq": "12",
                               "min_order_value": "50", "lead_time_days": "2", "order_weekdays": "1|3|5",
                               "cutoff_time": "14:00", "max_order_qty": "240", "service_level": "0.95"},
    "mms/purchase_orders.csv": {"po_id": "PO-{n}", "line_no": "1", "store_id": "1", "supplier_id": "10",
                                "item_id": "100", "order_date": "2019-04-29", "due_date": "2019-04-30",
                                "quantity": "24", "status": "open"},
    "mms/goods_receipts.csv": {"receipt_no": "GR-{n}", "po_id": "PO-OLD-1", "line_no": "1", "store_id": "1",
                               "item_id": "100", "received_date": "2019-04-29", "quantity": "24"},
    "mms/promotions.csv": {"promotion_id": "PR-{n}", "store_id": "1", "item_id": "100", "start_date": "2019-04-29",
                           "end_date": "2019-04-30", "promo_type": "price_cut"},
    "mms/calendar.csv": {"calendar_date": "2019-04-2{n}", "region": "BY", "weekday": "Mon",
                         "is_public_holiday": "false", "is_school_holiday": "false"},
    "mms/weather.csv": {"store_id": "{n}", "weather_date": "2019-04-29", "rain_mm": "0.0", "temperature_c": "14.5",
                        "is_forecast": "false"},
}


def _columns(file: str) -> tuple[str, ...]:
    system, entity = file.removesuffix(".csv").split("/")
    return get_entity(system, entity).column_names


def header(file: str) -> str:
    return ",".join(_columns(file)) + "\n"


def row(file: str, n: int = 1, **values: str) -> str:
    """The n-th valid row of ``file`` with ``values`` (raw CSV text, quoted by the caller if need be) put in."""
    cells = {c: GOOD[file][c].format(n=n) for c in _columns(file)}
    cells.update(values)
    return ",".join(cells[c] for c in _columns(file)) + "\n"


def one_bad(name: str, file: str, column: str, value: str, reason: str, problem: str = "") -> Case:
    """A valid row (line 2), the bad one (line 3), another valid row (line 4)."""
    content = header(file) + row(file, 1) + row(file, 2, **{column: value}) + row(file, 3)
    return Case(name, file, problem or f"{column} is {value[:40]!r}", content, (Quarantined(3, column, reason),))


def edge_and_bad(name: str, file: str, column: str, edge: str, bad: str, reason: str, loads_as: str | None = None,
                 problem: str = "") -> Case:
    """An awkward but valid value (line 2, must load) beside a bad one (line 3)."""
    content = header(file) + row(file, 1, **{column: edge}) + row(file, 2, **{column: bad})
    return Case(name, file, problem or f"{column} {edge!r} loads, {bad[:40]!r} does not", content,
                (Quarantined(3, column, reason),), loaded={column: edge if loads_as is None else loads_as})


S, W, ST, IT, IS = "pos/sales_lines.csv", "pos/waste_lines.csv", "mms/stores.csv", "mms/items.csv", \
    "mms/item_suppliers.csv"
OFFSET = "UTC offset out of range"
YEARS = "outside the accepted years 1900..2099"
DATES = "outside the accepted range 1900-01-01..2099-12-31"
INT_RANGE = "integer out of range (-2147483648..2147483647)"
NUM_RANGE = "number out of range"
CONTROL = "contains the control character"


def _timestamps() -> list[Case]:
    return [
        one_bad("ts-offset-plus-20", S, "sold_at", "2019-04-29T09:15:00+20:00", OFFSET),
        one_bad("ts-offset-minus-16", S, "sold_at", "2019-04-29T09:15:00-16:00", OFFSET),
        one_bad("ts-offset-minutes-60", S, "sold_at", "2019-04-29T09:15:00+05:60", OFFSET),
        one_bad("ts-offset-compact-2400", S, "sold_at", "2019-04-29T09:15:00+2400", OFFSET),
        edge_and_bad("ts-offset-15-59-loads", S, "sold_at", "2019-04-29T09:15:00-15:59", "2019-04-29T09:15:00+16",
                     OFFSET),
        one_bad("ts-offset-stock-snapshot", "pos/stock_levels.csv", "snapshot_at", "2019-04-29T20:00:00-23:00",
                OFFSET),
        one_bad("ts-year-0001", S, "sold_at", "0001-01-01T00:00:00+00:00", YEARS),
        one_bad("ts-year-9999", S, "sold_at", "9999-12-31T23:59:59-15:00", YEARS),
        one_bad("ts-year-2300", S, "sold_at", "2300-01-01T10:00:00Z", YEARS),
        one_bad("ts-year-1899", S, "sold_at", "1899-12-31T23:00:00+01:00", YEARS),
        one_bad("ts-hour-25", S, "sold_at", "2019-04-29T25:00:00+02:00", "impossible timestamp"),
        one_bad("ts-feb-30", S, "sold_at", "2019-02-30T10:00:00+01:00", "impossible timestamp"),
        one_bad("ts-without-offset", S, "sold_at", "2019-04-29T09:15:00", "not an ISO-8601 timestamp with UTC offset"),
        one_bad("ts-lowercase-z", S, "sold_at", "2019-04-29T09:15:00z", "not an ISO-8601 timestamp"),
        one_bad("ts-offset-seconds", S, "sold_at", "2019-04-29T09:15:00+05:30:15", "not an ISO-8601 timestamp"),
        one_bad("ts-words", S, "sold_at", "yesterday", "not an ISO-8601 timestamp"),
        one_bad("ts-missing", S, "sold_at", "", "required value missing"),
        edge_and_bad("ts-compact-offset-loads", S, "sold_at", "2019-04-29 09:15:00.123456789+0530",
                     "2019-04-29 09:15:00+1600", OFFSET),
    ]


def _dates() -> list[Case]:
    return [
        one_bad("date-2300", W, "waste_date", "2300-01-01", DATES, "a real date, far outside the accepted range"),
        one_bad("date-1899", W, "waste_date", "1899-12-31", DATES),
        one_bad("date-year-0", ST, "opened_date", "0000-01-01", DATES),
        one_bad("date-9999-open-end", "mms/promotions.csv", "end_date", "9999-12-31", DATES),
        one_bad("date-feb-30", W, "waste_date", "2019-02-30", "impossible date"),
        one_bad("date-month-13", W, "waste_date", "2019-13-01", "impossible date"),
        one_bad("date-german", W, "waste_date", "29.04.2019", "not an ISO date (YYYY-MM-DD)"),
        one_bad("date-timestamp", W, "waste_date", "2019-04-29T00:00:00Z", "not an ISO date"),
        edge_and_bad("date-leap-day-loads", W, "waste_date", "2020-02-29", "2019-02-29", "impossible date"),
    ]


def _integers() -> list[Case]:
    return [
        one_bad("int-11-digits", S, "store_id", "12345678901", INT_RANGE, "an 11-digit store id"),
        one_bad("int-2-pow-31", S, "item_id", "2147483648", INT_RANGE),
        one_bad("int-below-min", S, "item_id", "-2147483649", INT_RANGE),
        one_bad("int-40-digits", "mms/purchase_orders.csv", "line_no", "9" * 40, INT_RANGE),
        one_bad("int-decimal", S, "item_id", "100.0", "not an integer"),
        one_bad("int-exponent", S, "item_id", "1e3", "not an integer"),
        one_bad("int-hex", S, "item_id", "0x1F", "not an integer"),
        one_bad("int-nul-inside", S, "store_id", "1\x00", "not an integer: '1\\x00'",
                "a NUL after the digits (shown escaped in the reason)"),
        one_bad("int-below-contract-min", IT, "shelf_life_days", "0", "must be >= 1"),
        edge_and_bad("int-leading-zeros-load", IS, "pack_size", "0000000000000000000000006", "6x", "not an integer",
                     loads_as="6"),
        edge_and_bad("int-max-loads", S, "item_id", "+2147483647", "2147483648", INT_RANGE, loads_as="2147483647"),
    ]


def _numbers() -> list[Case]:
    return [
        one_bad("num-1e400", S, "quantity", "1e400", NUM_RANGE),
        one_bad("num-minus-1e400", S, "amount", "-1e400", NUM_RANGE),
        one_bad("num-underflow", S, "unit_price", "1e-400", NUM_RANGE, "non-zero but below a double's range"),
        one_bad("num-500-digits", S, "amount", "9" * 500, NUM_RANGE),
        one_bad("num-huge-exponent", "mms/weather.csv", "rain_mm", "1e99999999999", NUM_RANGE),
        one_bad("num-nan", S, "amount", "NaN", "not a number"),
        one_bad("num-infinity", S, "amount", "Infinity", "not a number"),
        one_bad("num-decimal-comma", S, "quantity", '"1,5"', "not a number: '1,5'"),
        one_bad("num-negative-quantity", S, "quantity", "-1", "must be >= 0"),
        one_bad("num-service-level-1", IS, "service_level", "1", "must be < 1"),
        edge_and_bad("num-zero-huge-negative-exponent-loads", "mms/weather.csv", "rain_mm", "0e-99999", "0x0",
                     "not a number", loads_as="0",
                     problem="0e-99999 is zero (PostgreSQL itself refuses the text), 0x0 is no number"),
    ]


def _text() -> list[Case]:
    return [
        one_bad("text-nul-receipt-id", S, "receipt_id", "R\x002", CONTROL + " U+0000 at position 2"),
        one_bad("text-nul-weekday", S, "weekday", "Mo\x00n", CONTROL + " U+0000", "NUL in an optional label"),
        one_bad("text-nul-store-name", ST, "store_name", "Markt\x00Nord", CONTROL + " U+0000"),
        one_bad("text-bell", IT, "item_name", "Milk\x07", CONTROL + " U+0007"),
        one_bad("text-ansi-escape", IT, "category", "\x1b[31mdairy\x1b[0m", CONTROL + " U+001B",
                "a terminal escape sequence"),
        one_bad("text-del", ST, "city", "Ham\x7fburg", CONTROL + " U+007F"),
        one_bad("text-c1-nel", "mms/suppliers.csv", "supplier_name", "Dairy\x85Co", CONTROL + " U+0085"),
        one_bad("text-noncharacter", "mms/promotions.csv", "promo_type", "price\ufffecut", CONTROL + " U+FFFE"),
        one_bad("text-vertical-tab", ST, "region", "H\x0bH", CONTROL + " U+000B"),
        one_bad("text-form-feed-po", "mms/purchase_orders.csv", "po_id", "PO\x0c9", CONTROL + " U+000C"),
        edge_and_bad("text-tab-loads", IT, "item_name", "Milk\t1L", "Milk\x001L", CONTROL + " U+0000"),
        one_bad("text-channel-fax", "mms/suppliers.csv", "channel", "fax", "not one of email/api/edifact"),
        one_bad("text-weekday-8", IS, "order_weekdays", "1|8", "does not match"),
        one_bad("text-cutoff-25h", IS, "cutoff_time", "25:00", "does not match"),
        one_bad("text-status-case", "mms/purchase_orders.csv", "status", "OPEN", "not one of open/received/cancelled"),
        one_bad("text-required-empty", IT, "item_name", "", "required value missing"),
        one_bad("text-required-blank", ST, "city", "   ", "required value missing"),
    ]


def _booleans() -> list[Case]:
    return [
        one_bad("bool-yes", ST, "is_active", "yes", "not a boolean (true/false)"),
        one_bad("bool-1", IT, "is_active", "1", "not a boolean"),
    ]


def _records() -> list[Case]:
    h = header(S)
    return [
        Case("rec-too-few-fields", S, "a row one field short", h + row(S, 1) + "R2,1,100,2019-04-29T09:15:00+02:00,2,"
             "1.49,2.98\n", (Quarantined(3, None, "expected 8 fields, found 7"),)),
        Case("rec-too-many-fields", S, "a row with a field too many", h + row(S, 1).rstrip("\n") + ",extra\n",
             (Quarantined(2, None, "expected 8 fields, found 9"),)),
        Case("rec-blank-spaces-line", S, "a line of spaces", h + row(S, 1) + "   \n" + row(S, 2),
             (Quarantined(3, None, "expected 8 fields, found 1"),)),
        Case("rec-quote-closed-lines-later", S,
             "a quote opened on line 3 and closed on line 5 swallows lines 4-5 into one value",
             h + row(S, 1) + row(S, 2, weekday='"Mon') + row(S, 3) + row(S, 4, weekday='Mon"') + row(S, 5),
             (Quarantined(3, "weekday", "line break inside a quoted value: the record runs from line 3 to line 5"),),
             records=3),
        Case("rec-quote-closed-wrong-count", S, "an unbalanced quote that makes a record of the wrong width",
             h + row(S, 1) + row(S, 2, receipt_id='"R2') + 'x",1\n' + row(S, 3),
             (Quarantined(3, None, "expected 8 fields, found 2; the record runs from line 3 to line 4"),),
             records=3),
        Case("rec-bare-cr-in-quotes", ST, "a carriage return inside a quoted name",
             header(ST) + row(ST, 1) + row(ST, 2, store_name='"Markt\rNord"'),
             (Quarantined(3, "store_name", "line break inside a quoted value"),), records=2),
        Case("rec-duplicate-key", S, "the same receipt id twice", h + row(S, 1) + row(S, 2) + row(S, 1),
             (Quarantined(4, "receipt_id", "duplicate key receipt_id=R1 (first on line 2)"),)),
        Case("rec-several-bad-rows", IT, "three bad rows in one file",
             header(IT) + row(IT, 1, unit_price="0") + row(IT, 2) + row(IT, 3, item_id="12345678901")
             + row(IT, 4, item_name="A\x00B"),
             (Quarantined(2, "unit_price", "must be > 0"), Quarantined(4, "item_id", INT_RANGE),
              Quarantined(5, "item_name", CONTROL))),
    ]


def _refused() -> list[Case]:
    h = header(S)
    long_file = h + row(S, 1, receipt_id='"R1') + "".join(row(S, n) for n in range(2, 105))
    return [
        Case("file-unbalanced-quote-line-2", S, "an unbalanced quote on line 2 of a 105-line file", long_file,
             Refused(2, "unbalanced quote")),
        Case("file-stray-quote", S, "text after a closing quote on line 3",
             h + row(S, 1) + row(S, 2, weekday='"Mon"day') + row(S, 3), Refused(3, "CSV syntax error")),
        Case("file-bad-utf8-line-4", S, "an invalid UTF-8 byte on line 4",
             (h + row(S, 1) + row(S, 2)).encode() + row(S, 3).encode().replace(b"Mon", b"M\xffn"),
             Refused(4, "not valid UTF-8")),
        Case("file-latin1", ST, "a Latin-1 encoded umlaut on line 3",
             (header(ST) + row(ST, 1)).encode() + row(ST, 2, city="München").encode("latin-1"),
             Refused(3, "not valid UTF-8")),
        Case("file-utf16", ST, "the file is UTF-16", (header(ST) + row(ST, 1)).encode("utf-16"),
             Refused(1, "not valid UTF-8")),
        Case("file-empty", W, "zero bytes", b"", Refused(1, "file is empty")),
        Case("file-only-whitespace", W, "only blank lines", "\n \n\n", Refused(1, "file is empty")),
        Case("file-empty-header", W, "a header of empty names", ",,,,\n1,100,2019-04-29,1,expired\n",
             Refused(1, "header row is empty")),
        Case("file-duplicate-header", W, "a column named twice",
             "store_id,item_id,waste_date,quantity,reason,quantity\n1,100,2019-04-29,1,expired,1\n",
             Refused(1, "duplicate header column(s) ['quantity']")),
        Case("file-missing-column", ST, "the required column city is missing",
             "store_id,store_name,region,opened_date,is_active\n1,A,HH,2015-03-01,true\n",
             Refused(1, "missing required column 'city'", "city")),
        Case("file-nul-in-header", ST, "a NUL inside the header name of a required column",
             header(ST).replace("city", "ci\x00ty") + row(ST, 1), Refused(1, "missing required column 'city'", "city")),
        Case("file-missing", "mms/weather.csv", "the file was not delivered", None, Refused(None, "file is missing")),
        Case("file-field-too-long", S, "a 200,000-character field on line 3",
             h + row(S, 1) + row(S, 2, weekday="x" * 200_000) + row(S, 3), Refused(3, "field larger than field limit")),
    ]


CASES: tuple[Case, ...] = tuple(
    _timestamps() + _dates() + _integers() + _numbers() + _text() + _booleans() + _records() + _refused()
)
assert len({c.name for c in CASES}) == len(CASES), "case names are unique"

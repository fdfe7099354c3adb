"""Sources of export data. Every connector yields the same text-only ``RawFrame``."""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from replenish.extract.contract import ENTITIES, EntitySpec, entities_for
from replenish.extract.schema import check_ident

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


class ExportFileError(Exception):
    """A whole export file is unusable (missing, empty, undecodable, unparseable, missing a required column).
    ``line``: the file's line (header = 1) where the problem is, when there is one."""

    def __init__(self, source: str, message: str, column: str | None = None, line: int | None = None):
        self.source = source
        self.message = message
        self.column = column
        self.line = line
        super().__init__(f"{source}: {message}" if line is None else f"{source}: line {line}: {message}")

    def __reduce__(self):  # crosses process boundaries intact (history chunks are prepared in worker processes)
        return (type(self), (self.source, self.message, self.column, self.line))


@dataclass
class MalformedRow:
    """A record that could not be split into the header's columns, one line each."""

    line_no: int
    reason: str
    raw_record: dict
    field: str | None = None


@dataclass
class RawFrame:
    """One file's records as text. ``data`` has one str column per header column ('' = empty)."""

    data: pd.DataFrame
    source: str
    line_numbers: np.ndarray
    malformed: list[MalformedRow] = field(default_factory=list)

    @property
    def rows_in_file(self) -> int:
        return len(self.data) + len(self.malformed)


@runtime_checkable
class Connector(Protocol):
    name: str

    @property
    def entities(self) -> tuple[EntitySpec, ...]: ...

    def read(self, entity_spec: EntitySpec, business_date: date) -> RawFrame: ...


def _iso(d: date | str) -> str:
    return d.isoformat() if isinstance(d, date) else date.fromisoformat(d).isoformat()


def parse_csv_bytes(payload: bytes, source: str) -> RawFrame:
    """Split a contract CSV into a text frame. Line numbers are physical (header = line 1); a record whose quoted
    field spans lines is numbered by its first line. A file that cannot be split at all is refused naming the line
    where the problem starts."""
    if not payload.strip():
        raise ExportFileError(source, "file is empty (no header row)", line=1)
    try:
        content = payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = payload.count(b"\n", 0, exc.start) + 1
        column = exc.start - (payload.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ExportFileError(
            source, f"not valid UTF-8 ({exc.reason} at byte {exc.start}, byte {column} of the line)", line=line
        ) from None
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    start = 1  # first physical line of the record being read
    try:
        header = next(reader)
        header = [h.strip() for h in header]
        if not any(header):
            raise ExportFileError(source, "header row is empty", line=1)
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise ExportFileError(source, f"duplicate header column(s) {dupes}", line=1)
        n = len(header)
        rows: list[list[str]] = []
        lines: list[int] = []
        malformed: list[MalformedRow] = []
        start = reader.line_num + 1
        for rec in reader:
            line_no, start = start, reader.line_num + 1
            if not rec:  # blank line
                continue
            spans = reader.line_num > line_no  # a quoted value holds a line break
            if len(rec) == n and not spans:
                rows.append(rec)
                lines.append(line_no)
                continue
            raw: dict[str, str | list[str]] = dict(zip(header, rec, strict=False))
            if len(rec) > n:
                raw["_extra_fields"] = rec[n:]
            # A record is one line: a line break inside quotes is almost always a quote opened and never closed,
            # which swallows the lines up to the next quote into one value.
            broken = f"the record runs from line {line_no} to line {reader.line_num} (an unbalanced quote?)"
            if len(rec) != n:
                reason = f"expected {n} fields, found {len(rec)}" + (f"; {broken}" if spans else "")
                malformed.append(MalformedRow(line_no, reason, raw))
            else:
                where = next((h for h, v in zip(header, rec, strict=True) if "\n" in v or "\r" in v), None)
                malformed.append(MalformedRow(line_no, f"line break inside a quoted value: {broken}", raw, where))
    except csv.Error as exc:
        raise ExportFileError(source, _csv_problem(str(exc), start, reader.line_num), line=start) from None
    data = (
        pd.DataFrame(rows, columns=header, dtype=object)
        if rows
        else pd.DataFrame({h: pd.Series([], dtype=object) for h in header})
    )
    return RawFrame(data, source, np.asarray(lines, dtype=np.int64), malformed)


def _csv_problem(error: str, start: int, seen: int) -> str:
    """The csv module's error as the record's problem: it notices an unclosed quote only at the end of the file,
    and a stray quote only where the quoted text ends; the problem is where the record starts."""
    if "unexpected end of data" in error:
        return f"unbalanced quote: a quoted field opened in the record starting here is never closed " \
               f"(the file ends on line {seen} still inside it)"
    where = "" if seen <= start else f" (noticed on line {seen}, the record's quoted text spans lines)"
    return f"CSV syntax error in the record starting here: {error}{where}"


class CsvExportConnector:
    """Reads ``<root>/<D>/<system>/<entity>.csv``."""

    name = "csv_export"
    # plain files and no open handles: chunks can be read and validated in worker processes
    parallel_read = True

    def __init__(self, root: str | Path, systems: Iterable[str] | None = None):
        self.root = Path(root)
        self._entities = tuple(e for e in ENTITIES if systems is None or e.system in set(systems))

    @property
    def entities(self) -> tuple[EntitySpec, ...]:
        return self._entities

    def path(self, entity_spec: EntitySpec, business_date: date | str) -> Path:
        return self.root / _iso(business_date) / entity_spec.system / f"{entity_spec.entity}.csv"

    def read(self, entity_spec: EntitySpec, business_date: date) -> RawFrame:
        path = self.path(entity_spec, business_date)
        try:
            payload = path.read_bytes()
        except FileNotFoundError:
            raise ExportFileError(str(path), "file is missing") from None
        except OSError as exc:
            raise ExportFileError(str(path), f"cannot read file: {exc}") from None
        return parse_csv_bytes(payload, str(path))

    def day_bytes(self, business_date: date | str) -> int:
        """Size of the day's export files (0 for missing ones): the memory a load of the day needs scales with it."""
        total = 0
        for spec in self._entities:
            try:
                total += self.path(spec, business_date).stat().st_size
            except OSError:
                continue
        return total

    def __repr__(self) -> str:
        return f"CsvExportConnector({str(self.root)!r})"


class MmsDatabaseConnector:
    """Reads the mms entities from a merchandise-management database.

    Expects one table per entity in ``schema`` (named like the entity, e.g. ``mms_source.items``)
    with the contract columns (any type; everything is read as text) and a ``business_date``
    column. Rows are numbered in key order; ``_source_line`` is that ordinal + 1 (no header)
    so it is comparable to the CSV line numbers of an export written in key order.
    """

    name = "mms_database"

    def __init__(self, engine: Engine, schema: str = "mms_source"):
        self.engine = engine
        self.schema = check_ident(schema)

    @property
    def entities(self) -> tuple[EntitySpec, ...]:
        return entities_for("mms")

    def _columns(self, conn, table: str) -> list[str]:
        from sqlalchemy import text

        return list(
            conn.execute(
                text(
                    "select column_name from information_schema.columns "
                    "where table_schema = :s and table_name = :t order by ordinal_position"
                ),
                {"s": self.schema, "t": table},
            ).scalars()
        )

    def read(self, entity_spec: EntitySpec, business_date: date) -> RawFrame:
        if entity_spec.system != "mms":
            raise ValueError(f"{self!r} only provides mms entities, not {entity_spec.name}")
        table = entity_spec.entity
        source = f"{self.schema}.{table}@{_iso(business_date)}"
        with self.engine.connect() as conn:
            cols = self._columns(conn, table)
            if not cols:
                raise ExportFileError(source, f"source table {self.schema}.{table} does not exist")
            if "business_date" not in cols:
                raise ExportFileError(source, "source table has no business_date column", "business_date")
            cols = [c for c in cols if c != "business_date"]
            key_cols = [k for k in entity_spec.key if k in cols] or cols[:1]
            select = ", ".join(f'coalesce("{c}"::text, \'\') as "{c}"' for c in cols)
            order = ", ".join(f'"{k}"' for k in key_cols)
            raw = conn.exec_driver_sql(
                f'select {select} from {self.schema}."{table}" where business_date = %(d)s order by {order}',
                {"d": _iso(business_date)},
            )
            rows = [list(r) for r in raw]
        data = (
            pd.DataFrame(rows, columns=cols, dtype=object)
            if rows
            else pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
        )
        return RawFrame(data, source, np.arange(2, len(rows) + 2, dtype=np.int64))

    def __repr__(self) -> str:
        return f"MmsDatabaseConnector(schema={self.schema!r})"


def populate_mms_source(
    engine: Engine,
    exports_root: str | Path,
    dates: Iterable[date] | None = None,
    schema: str = "mms_source",
    replace: bool = True,
) -> dict[str, int]:
    """Copy the mms CSV exports under ``exports_root`` into ``<schema>.<entity>`` tables.

    Columns are created as text (so the source can carry the same defects as the files) plus
    ``business_date date``. Returns rows written per entity.
    """
    schema = check_ident(schema)
    root = Path(exports_root)
    if dates is None:
        dates = sorted(date.fromisoformat(p.name) for p in root.iterdir() if p.is_dir())
    dates = list(dates)
    csvc = CsvExportConnector(root)
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        conn.exec_driver_sql(f"create schema if not exists {schema}")
        dbapi_conn = conn.connection.driver_connection
        assert dbapi_conn is not None  # a checked-out, open connection always has its DBAPI connection
        cur = dbapi_conn.cursor()
        for spec in entities_for("mms"):
            cols = spec.column_names
            if replace:
                conn.exec_driver_sql(f'drop table if exists {schema}."{spec.entity}"')
            conn.exec_driver_sql(
                f'create table if not exists {schema}."{spec.entity}" (business_date date not null, '
                + ", ".join(f'"{c}" text' for c in cols)
                + ")"
            )
            frames = []
            for d in dates:
                rf = csvc.read(spec, d)
                df = rf.data.reindex(columns=list(cols))
                df.insert(0, "business_date", _iso(d))
                frames.append(df)
            df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
            counts[spec.name] = len(df)
            if len(df):
                buf = io.StringIO()
                df.replace({"": None}).to_csv(buf, index=False, header=False)
                buf.seek(0)
                collist = ", ".join(f'"{c}"' for c in ["business_date", *cols])
                cur.copy_expert(f'copy {schema}."{spec.entity}" ({collist}) from stdin with (format csv)', buf)
    return counts

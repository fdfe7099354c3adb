"""Load export days into the raw layer: validate, quarantine, COPY; one transaction per chunk."""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import multiprocessing
import os
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text

from replenish.bulk import Payload, copy_payload, csv_payload
from replenish.extract.connectors import Connector, ExportFileError, RawFrame
from replenish.extract.contract import (
    FORBIDDEN_ID_CHARS,
    FORBIDDEN_TEXT_CHARS,
    INT4_MAX,
    INT4_MIN,
    MAX_UTC_OFFSET_MINUTES,
    PLAUSIBLE_YEARS,
    Column,
    EntitySpec,
    describe_char,
)
from replenish.extract.schema import RAW_SCHEMA, check_ident, prepare_raw_schema

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

_INT_RE = r"[+-]?\d+"
_INT_PARSEABLE_RE = r"[+-]?0*\d{1,18}"  # fits int64: Arrow parses it, the int4 range check follows
_NUM_RE = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUM_ZERO_RE = r"[+-]?[0.]*(?:[eE][+-]?\d+)?"  # a well-formed number whose digits are all 0
_DATE_RE = r"\d{4}-\d{2}-\d{2}"
_TS_BODY = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"
_TS_RE = _TS_BODY + r"(?:Z|[+-]\d{2}(?::?\d{2})?)"
# the same with an offset PostgreSQL takes: hours 00..15, minutes 00..59 (MAX_UTC_OFFSET_MINUTES)
_TS_PG_RE = _TS_BODY + r"(?:Z|[+-](?:0\d|1[0-5])(?::?[0-5]\d)?)"
assert MAX_UTC_OFFSET_MINUTES == 15 * 60 + 59, "_TS_PG_RE spells out the offset limit"
_FORBIDDEN_TEXT = "[" + FORBIDDEN_TEXT_CHARS + "]"
_FORBIDDEN_TEXT_RE = re.compile(_FORBIDDEN_TEXT)
_UNPRINTABLE = re.compile("[" + FORBIDDEN_ID_CHARS + "]")  # shown escaped in a reason (tab, line breaks too)
_BOOL = {"true": "true", "false": "false"}
# Column text for validation: Arrow-backed strings (strip/regex run vectorised in C++, several times faster than
# Python's per-value string calls on object columns; the results are the same).
_TEXT: Literal["string[pyarrow]"] = "string[pyarrow]"


class LoadInvariantError(RuntimeError):
    """loaded + quarantined != rows in file (a loader bug; the chunk is rolled back)."""


@dataclass
class EntityCounts:
    files: int = 0
    rows_in_file: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0

    def add(self, other: EntityCounts) -> None:
        self.files += other.files
        self.rows_in_file += other.rows_in_file
        self.rows_loaded += other.rows_loaded
        self.rows_quarantined += other.rows_quarantined


@dataclass
class LoadSummary:
    connector: str = ""
    days: int = 0
    files: int = 0
    rows_in_files: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    per_entity: dict[str, EntityCounts] = field(default_factory=dict)
    seconds: float = 0.0

    def add_file(self, entity: str, rows_in_file: int, loaded: int, quarantined: int) -> None:
        self.files += 1
        self.rows_in_files += rows_in_file
        self.rows_loaded += loaded
        self.rows_quarantined += quarantined
        self.per_entity.setdefault(entity, EntityCounts()).add(EntityCounts(1, rows_in_file, loaded, quarantined))

    def merge(self, other: LoadSummary) -> None:
        self.days += other.days
        self.files += other.files
        self.rows_in_files += other.rows_in_files
        self.rows_loaded += other.rows_loaded
        self.rows_quarantined += other.rows_quarantined
        for k, v in other.per_entity.items():
            self.per_entity.setdefault(k, EntityCounts()).add(v)
        self.seconds += other.seconds

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


# --------------------------------------------------------------------------- validation


@dataclass
class Validated:
    """Validation result for a concatenated entity frame (index aligned with the input)."""

    values: pd.DataFrame  # normalised text for COPY (NA = NULL), contract columns only
    field: pd.Series  # failing field (None = ok)
    reason: pd.Series  # failure reason (None = ok)

    @property
    def ok(self) -> pd.Series:
        return self.reason.isna()


def _escape(value: str) -> str:
    return _UNPRINTABLE.sub(lambda m: ascii(m[0])[1:-1], value)  # NUL shown as \x00, a line feed as \n


def _repr(s: pd.Series) -> np.ndarray:
    """A value quoted for a reason: at most 80 characters, control characters escaped (a reason is shown in the
    terminal and on web pages, and PostgreSQL text cannot hold NUL). Vectorised; Python only for escaped ones."""
    cut = s.str.slice(0, 80)
    out = ("'" + cut + "'").to_numpy(dtype=object)
    odd = _mask(cut.str.contains(_UNPRINTABLE.pattern, regex=True))
    if odd.any():
        out[odd] = ["'" + _escape(v) + "'" for v in cut[odd]]
    return out


def _numbers(st: pd.Series, good: np.ndarray, integer: bool) -> tuple[np.ndarray, pa.Array | None]:
    """Float values of the ``good`` entries of ``st`` (text the format regex matched), NaN elsewhere; for integers
    also their canonical text ('+05' -> '5'). Arrow's casts parse in C++, where pandas' to_numeric and str() went
    through Python objects (most of an integer column's validation time); Arrow takes no leading '+'. A number
    beyond float range parses as infinite (pandas gave NaN and let it through)."""
    arr = pc.replace_substring_regex(pa.array(st.where(good, "0"), type=pa.string()), "^[+]", "")
    parsed = pc.cast(arr, pa.int64() if integer else pa.float64())
    num = parsed.to_numpy(zero_copy_only=False).astype("float64")
    num[~good] = np.nan
    return num, pc.cast(parsed, pa.string()) if integer else None


def _mask(b: pd.Series) -> np.ndarray:
    return b.to_numpy(dtype=bool, na_value=False)


def _years(st: pd.Series, good: np.ndarray) -> np.ndarray:
    """The year written at the start of the ``good`` dates/timestamps (their format regex matched)."""
    head = pc.utf8_slice_codeunits(pa.array(st.where(good, "2000"), type=pa.string()), 0, 4)
    return pc.cast(head, pa.int32()).to_numpy(zero_copy_only=False)


def _fullmatch_on(st: pd.Series, rows: np.ndarray, pattern: str) -> np.ndarray:
    """``fullmatch`` evaluated on ``rows`` only (False elsewhere): the finer diagnosis of the few rows the fast
    check rejected costs nothing on a clean file."""
    out = np.zeros(len(st), dtype=bool)
    if rows.any():
        out[rows] = _mask(st[rows].str.fullmatch(pattern))
    return out


def _first_forbidden(value: str) -> str:
    m = _FORBIDDEN_TEXT_RE.search(value)
    assert m is not None  # called for values the same class matched
    return f"contains the control character {describe_char(m[0])} at position {m.start() + 1}"


class _Failures:
    """The reason each value of a column fails, in numpy arrays; a value keeps the first reason it failed for
    (a later check does not overwrite it), so the checks run from the basic ones (format) to the finer ones."""

    def __init__(self, st: pd.Series):
        self.st = st
        self.failed = np.zeros(len(st), dtype=bool)
        self.reason = np.full(len(st), None, dtype=object)

    def __call__(self, mask: np.ndarray, msg: str, show_value: bool = True) -> None:
        m = mask & ~self.failed
        if m.any():
            self.reason[m] = (msg + ": " + _repr(self.st[m])) if show_value else msg
            self.failed[m] = True


# A type's check: (column text, its stripped text, present mask, failures) -> (numeric value or None, normalised text)
_Check = Callable[[pd.Series, pd.Series, np.ndarray, _Failures], tuple[np.ndarray | None, pd.Series | pa.Array]]


def _check_text(s: pd.Series, st: pd.Series, present: np.ndarray, fail: _Failures) -> tuple[None, pd.Series]:
    # text keeps its surrounding blanks; the reason names the first forbidden character of each value
    forbidden = _mask(s.str.contains(_FORBIDDEN_TEXT, regex=True)) & ~fail.failed
    if forbidden.any():
        fail.reason[forbidden] = [_first_forbidden(v) + ": '" + _escape(v[:80]) + "'" for v in s[forbidden]]
        fail.failed[forbidden] = True
    return None, s


def _check_int(s: pd.Series, st: pd.Series, present: np.ndarray, fail: _Failures) -> tuple[np.ndarray, pa.Array]:
    fast = _mask(st.str.fullmatch(_INT_PARSEABLE_RE))
    slow = present & ~fast
    digits = _fullmatch_on(st, slow, _INT_RE)  # well-formed, but more digits than int64 holds
    fail(slow & ~digits, "not an integer")
    out_of_range = f"integer out of range ({INT4_MIN}..{INT4_MAX})"
    fail(slow & digits, out_of_range)
    num, canonical = _numbers(st, present & fast, integer=True)
    fail((num < INT4_MIN) | (num > INT4_MAX), out_of_range)
    assert canonical is not None
    return num, canonical


def _check_numeric(s: pd.Series, st: pd.Series, present: np.ndarray,
                   fail: _Failures) -> tuple[np.ndarray, pd.Series]:
    value = st
    fmt = _mask(st.str.fullmatch(_NUM_RE))
    fail(present & ~fmt, "not a number")
    good = present & fmt
    num, _ = _numbers(st, good, integer=False)
    zero = _fullmatch_on(st, good & (num == 0), _NUM_ZERO_RE)
    # beyond a double's range either way: infinite, or a non-zero value that parsed as 0 (1e-400)
    fail(good & (np.isinf(num) | ((num == 0) & ~zero)), "number out of range (beyond a double's range)")
    if zero.any():  # all-zero digits load as 0: PostgreSQL refuses 0e-99999 ("value overflows numeric format")
        value = pd.Series(pd.arrays.ArrowStringArray(pc.if_else(pa.array(zero), "0", pa.array(st))),
                          index=st.index)
    return num, value


def _check_date(s: pd.Series, st: pd.Series, present: np.ndarray, fail: _Failures) -> tuple[None, pd.Series]:
    lo, hi = PLAUSIBLE_YEARS
    fmt = _mask(st.str.fullmatch(_DATE_RE))
    fail(present & ~fmt, "not an ISO date (YYYY-MM-DD)")
    good = present & fmt
    year = _years(st, good)
    fail(good & ((year < lo) | (year > hi)), f"date outside the accepted range {lo}-01-01..{hi}-12-31")
    parsed = pd.to_datetime(st.where(good & ~fail.failed), format="%Y-%m-%d", errors="coerce")
    fail(good & _mask(parsed.isna()), "impossible date")
    return None, st


def _check_timestamptz(s: pd.Series, st: pd.Series, present: np.ndarray,
                       fail: _Failures) -> tuple[None, pd.Series]:
    lo, hi = PLAUSIBLE_YEARS
    pg = _mask(st.str.fullmatch(_TS_PG_RE))
    fmt = pg | _fullmatch_on(st, present & ~pg, _TS_RE)
    fail(present & ~fmt, "not an ISO-8601 timestamp with UTC offset")
    good = present & fmt
    year = _years(st, good)
    fail(good & ((year < lo) | (year > hi)), f"timestamp outside the accepted years {lo}..{hi}")
    limit = f"{MAX_UTC_OFFSET_MINUTES // 60:02d}:{MAX_UTC_OFFSET_MINUTES % 60:02d}"
    fail(good & ~pg, f"UTC offset out of range (-{limit}..+{limit})")
    # Arrow's RE2 (pandas' str.replace with a group reference runs Python's re per value)
    value = pd.Series(pd.arrays.ArrowStringArray(
        pc.replace_substring_regex(pa.array(st), r"([+-]\d{2})$", r"\1:00")), index=st.index)
    parsed = pd.to_datetime(value.where(good & ~fail.failed), format="ISO8601", utc=True, errors="coerce")
    fail(good & _mask(parsed.isna()), "impossible timestamp")
    return None, value


def _check_bool(s: pd.Series, st: pd.Series, present: np.ndarray, fail: _Failures) -> tuple[None, pd.Series]:
    value = st.str.lower()
    fail(present & ~_mask(value.isin(list(_BOOL))), "not a boolean (true/false)")
    return None, value


_CHECKS: dict[str, _Check] = {"text": _check_text, "int": _check_int, "numeric": _check_numeric,
                              "date": _check_date, "timestamptz": _check_timestamptz, "bool": _check_bool}


def _check_constraints(col: Column, st: pd.Series, present: np.ndarray, num: np.ndarray | None,
                       fail: _Failures) -> None:
    """The column's own limits on top of its type: numeric bounds, allowed values, pattern."""
    if num is not None:
        if col.min is not None:
            bad = num < col.min if col.min_inclusive else num <= col.min
            fail(present & bad, f"must be {'>=' if col.min_inclusive else '>'} {col.min:g}")
        if col.max is not None:
            bad = num > col.max if col.max_inclusive else num >= col.max
            fail(present & bad, f"must be {'<=' if col.max_inclusive else '<'} {col.max:g}")
    if col.type == "text":
        if col.allowed:
            fail(present & ~_mask(st.isin(list(col.allowed))), f"not one of {'/'.join(col.allowed)}")
        if col.pattern:
            fail(present & ~_mask(st.str.fullmatch(col.pattern)), f"does not match {col.pattern}")


def _validate_column(col: Column, s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Return (normalised value or NA, reason or None) for one column. Vectorised: masks are numpy arrays and the
    values stay Arrow strings (a masked assignment into an Arrow string Series converts every value to Python).
    Every value that passes is one PostgreSQL takes for the column's type: a value it would refuse fails the whole
    COPY, and with it the day."""
    st = s.str.strip()
    present = _mask(st.ne(""))
    fail = _Failures(st)
    if col.required:
        fail(~present, "required value missing", show_value=False)
    check = _CHECKS.get(col.type)
    if check is None:  # pragma: no cover - contract guarantees the type
        raise ValueError(col.type)
    num, value = check(s, st, present, fail)  # value: the normalised text of a value that passes
    _check_constraints(col, st, present, num, fail)
    arr = value if isinstance(value, pa.Array | pa.ChunkedArray) else pa.array(value)
    out = pc.if_else(pa.array(present & ~fail.failed), arr, None)
    return pd.Series(pd.arrays.ArrowStringArray(out), index=s.index), pd.Series(fail.reason, index=s.index)


def validate_frame(spec: EntitySpec, df: pd.DataFrame, file_col: str | None = None) -> Validated:
    """Validate contract columns of ``df`` (all text). Duplicate keys within one file
    (``file_col`` groups rows of one file) are rejected after the first occurrence."""
    cols: dict[str, pd.Series] = {}
    field_s = pd.Series(None, index=df.index, dtype=object)
    reason_s = pd.Series(None, index=df.index, dtype=object)
    for col in spec.columns:
        raw = df[col.name]
        if pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty"):  # CSV text: no str() per value
            s = raw.astype(_TEXT).fillna("")
        else:  # a database connector's values (numbers, dates): their text, as the file would have held it
            s = raw.astype(object).where(raw.notna(), "").astype(str).astype(_TEXT)
        out, reason = _validate_column(col, s)
        cols[col.name] = out
        new = reason.notna() & reason_s.isna()
        if new.any():
            reason_s[new] = reason[new]
            field_s[new] = col.name
    values = pd.DataFrame(cols, index=df.index)
    ok = reason_s.isna()
    if ok.any():
        key = list(spec.key)
        group = key + ([file_col] if file_col else [])
        cand = values.loc[ok, key].copy()
        if file_col:
            cand[file_col] = df.loc[ok, file_col]
        dup = cand.duplicated(subset=group, keep="first")
        if dup.any():
            line = df.loc[ok, "_source_line"] if "_source_line" in df else pd.Series(cand.index, index=cand.index)
            first_line = line.groupby([cand[g] for g in group], sort=False, dropna=False).transform("first")
            keytxt = pd.Series("", index=cand.index, dtype=object)
            for i, k in enumerate(key):
                keytxt = keytxt + ("" if i == 0 else ", ") + f"{k}=" + cand[k].astype(str)
            msg = "duplicate key " + keytxt + " (first on line " + first_line.astype(str) + ")"
            idx = dup[dup].index
            reason_s[idx] = msg[idx]
            field_s[idx] = ",".join(key)
    values[reason_s.notna()] = pd.NA
    return Validated(values, field_s, reason_s)


# --------------------------------------------------------------------------- chunk preparation


@dataclass
class _Prepared:
    rows: dict[str, pd.DataFrame]  # entity -> COPY-ready frame
    quarantine: pd.DataFrame
    batches: pd.DataFrame
    summary: LoadSummary


@dataclass
class _Chunk:
    tables: dict[str, Payload]  # entity -> rows; then quarantine, load_batches
    quarantine: Payload
    batches: Payload
    summary: LoadSummary


_QCOLS = ["batch_id", "business_date", "connector", "entity", "source_file", "line_no", "field", "reason", "raw_record"]
_BCOLS = [
    "batch_id",
    "business_date",
    "connector",
    "entity",
    "source_file",
    "rows_in_file",
    "rows_loaded",
    "rows_quarantined",
]


def _record_json(record: dict) -> str:
    """The record as found, for raw_record (jsonb). jsonb cannot hold NUL (\\u0000): it is stored as U+2400 (the
    symbol for NUL), every other character as it was."""
    doc = json.dumps(record, ensure_ascii=False)
    if "\\u0000" not in doc:
        return doc
    return json.dumps(_without_nul(record), ensure_ascii=False)


def _without_nul(value: object) -> object:
    if isinstance(value, str):
        return value.replace("\x00", "\u2400")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _frame_for_file(spec: EntitySpec, rf: RawFrame) -> pd.DataFrame:
    cols = set(rf.data.columns)
    for c in spec.required_columns:
        if c not in cols:
            raise ExportFileError(rf.source, f"missing required column '{c}'", c, line=1)
    extra = [c for c in rf.data.columns if c not in spec.column_names]
    if extra:
        log.warning("%s: ignoring unknown column(s) %s", rf.source, extra)
    return rf.data.reindex(columns=list(spec.column_names), fill_value="")


def _read_entity(connector: Connector, spec: EntitySpec, days: Sequence[date],
                 qrecords: list[dict]) -> tuple[pd.DataFrame, list[dict]]:
    """All days' files of one entity in one frame (validated together: one vectorised pass instead of one per
    file), each row tagged with its batch, day, file and line; the files' metadata (one batch each). Records
    the reader could not parse go to ``qrecords``."""
    parts: list[pd.DataFrame] = []
    metas: list[dict] = []
    lines: list[np.ndarray] = []
    for d in days:
        rf = connector.read(spec, d)
        df = _frame_for_file(spec, rf)
        bid = str(uuid.uuid4())
        parts.append(df)
        lines.append(rf.line_numbers)
        metas.append(
            {
                "batch_id": bid,
                "business_date": d.isoformat(),
                "source_file": rf.source,
                "rows_in_file": rf.rows_in_file,
                "malformed": len(rf.malformed),
            }
        )
        for mal in rf.malformed:
            qrecords.append(
                {
                    "batch_id": bid,
                    "business_date": d.isoformat(),
                    "connector": connector.name,
                    "entity": spec.name,
                    "source_file": rf.source,
                    "line_no": mal.line_no,
                    "field": mal.field,
                    "reason": mal.reason,
                    "raw_record": _record_json(mal.raw_record),
                }
            )
    big = pd.concat(parts, ignore_index=True)
    sizes = [len(p) for p in parts]
    big["_business_date"] = np.repeat([m["business_date"] for m in metas], sizes)
    big["_source_file"] = np.repeat([m["source_file"] for m in metas], sizes)
    big["_source_line"] = np.concatenate(lines) if lines else np.array([], dtype=np.int64)
    big["_batch_id"] = np.repeat([m["batch_id"] for m in metas], sizes)
    return big, metas


def _quarantined(connector: Connector, spec: EntitySpec, big: pd.DataFrame, v: Validated,
                 bad: pd.Series) -> pd.DataFrame:
    """Quarantine rows for the records that failed validation, with the record as found."""
    raw = big.loc[bad, list(spec.column_names)]
    return pd.DataFrame(
        {
            "batch_id": big.loc[bad, "_batch_id"],
            "business_date": big.loc[bad, "_business_date"],
            "connector": connector.name,
            "entity": spec.name,
            "source_file": big.loc[bad, "_source_file"],
            "line_no": big.loc[bad, "_source_line"],
            "field": v.field[bad],
            "reason": v.reason[bad],
            "raw_record": [_record_json(r) for r in raw.to_dict("records")],
        }
    )


def _batches(connector: Connector, spec: EntitySpec, big: pd.DataFrame, ok: pd.Series, metas: list[dict],
             summary: LoadSummary) -> list[dict]:
    """One load_batches row per file; every row of a file is either loaded or quarantined, or nothing loads."""
    bad = ~ok
    loaded_per = big.loc[ok, "_batch_id"].value_counts() if len(big) else pd.Series(dtype=int)
    bad_per = big.loc[bad, "_batch_id"].value_counts() if len(big) else pd.Series(dtype=int)
    batches = []
    for m in metas:
        loaded = int(loaded_per.get(m["batch_id"], 0))
        quarantined = int(bad_per.get(m["batch_id"], 0)) + m["malformed"]
        if loaded + quarantined != m["rows_in_file"]:
            raise LoadInvariantError(
                f"{m['source_file']}: loaded {loaded} + quarantined {quarantined} != {m['rows_in_file']} rows"
            )
        batches.append(
            {
                "batch_id": m["batch_id"],
                "business_date": m["business_date"],
                "connector": connector.name,
                "entity": spec.name,
                "source_file": m["source_file"],
                "rows_in_file": m["rows_in_file"],
                "rows_loaded": loaded,
                "rows_quarantined": quarantined,
            }
        )
        summary.add_file(spec.name, m["rows_in_file"], loaded, quarantined)
    return batches


def _prepare(connector: Connector, specs: Sequence[EntitySpec], days: Sequence[date]) -> _Prepared:
    summary = LoadSummary(connector=connector.name, days=len(days))
    rows: dict[str, pd.DataFrame] = {}
    qparts: list[pd.DataFrame] = []
    qrecords: list[dict] = []
    batches: list[dict] = []
    for spec in specs:
        big, metas = _read_entity(connector, spec, days, qrecords)
        v = validate_frame(spec, big, file_col="_batch_id")
        ok = v.ok
        good = v.values[ok].copy()
        for c in ("_business_date", "_source_file", "_source_line", "_batch_id"):
            good[c] = big.loc[ok, c]
        rows[spec.name] = good
        bad = ~ok
        if bad.any():
            qparts.append(_quarantined(connector, spec, big, v, bad))
        batches += _batches(connector, spec, big, ok, metas, summary)
    # the records the readers could not parse follow the ones that failed validation
    if qrecords:
        qparts.append(pd.DataFrame(qrecords, columns=_QCOLS))
    quarantine = pd.concat(qparts, ignore_index=True) if qparts else pd.DataFrame(columns=_QCOLS)
    return _Prepared(rows, quarantine[_QCOLS], pd.DataFrame(batches, columns=_BCOLS), summary)


# --------------------------------------------------------------------------- writing


def _prepare_chunk(connector: Connector, specs: Sequence[EntitySpec], days: Sequence[date]) -> _Chunk:
    """Read, validate and serialise one chunk (no database): runs in a worker process for histories."""
    p = _prepare(connector, specs, days)
    return _Chunk({name: csv_payload(df) for name, df in p.rows.items()}, csv_payload(p.quarantine),
                  csv_payload(p.batches), p.summary)


def _copy(cur, table: str, payload: Payload) -> int:
    written = copy_payload(cur, table, payload)
    if written != payload.rows:
        raise LoadInvariantError(f"COPY into {table} wrote {written} rows, expected {payload.rows}")
    return written


def _copy_rows(cur, table: str, payload: Payload) -> int:
    """COPY validated rows. Validation admits only values PostgreSQL takes; should one slip through anyway, the
    chunk is refused naming the file, line and field of that row (not the COPY's own line number)."""
    import psycopg2

    try:
        return _copy(cur, table, payload)
    except psycopg2.DataError as exc:
        raise _refused_by_database(payload, exc) from None


def _refused_by_database(payload: Payload, exc: Exception) -> ExportFileError:
    diag = getattr(exc, "diag", None)
    problem = _escape(str(getattr(diag, "message_primary", None) or exc).strip())
    where = re.search(r"line (\d+)(?:, column (\w+))?", str(getattr(diag, "context", None) or ""))
    if where is None:
        return ExportFileError(f"COPY of {len(payload.data)} bytes", f"PostgreSQL refused a value: {problem}")
    row, column = int(where[1]), where[2]
    record = next(itertools.islice(csv.reader(io.StringIO(payload.data.decode())), row - 1, None), None)
    values = dict(zip(payload.columns, record or [], strict=False))
    source, line = values.get("_source_file", "?"), values.get("_source_line")
    return ExportFileError(source, f"field {column}: PostgreSQL refused the value: {problem}", column,
                           int(line) if line and line.isdigit() else None)


def _write(engine: Engine, schema: str, specs: Sequence[EntitySpec], days: Sequence[date], p: _Chunk) -> None:
    day_list = [d.isoformat() for d in days]
    names = [s.name for s in specs]
    with engine.begin() as conn:
        # one loader per raw schema at a time; also starts the transaction on this connection
        conn.execute(text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": f"replenish.load:{schema}"})
        dbapi_conn = conn.connection.driver_connection
        assert dbapi_conn is not None  # a checked-out, open connection always has its DBAPI connection
        cur = dbapi_conn.cursor()
        for spec in specs:
            cur.execute(f"delete from {schema}.{spec.name} where _business_date = any(%s::date[])", (day_list,))
        cur.execute(
            f"delete from {schema}.quarantine where business_date = any(%s::date[]) and entity = any(%s)",
            (day_list, names),
        )
        cur.execute(
            f"delete from {schema}.load_batches where business_date = any(%s::date[]) and entity = any(%s)",
            (day_list, names),
        )
        for spec in specs:
            _copy_rows(cur, f"{schema}.{spec.name}", p.tables[spec.name])
        _copy(cur, f"{schema}.quarantine", p.quarantine)
        _copy(cur, f"{schema}.load_batches", p.batches)


# --------------------------------------------------------------------------- public API


def _as_date(d: date | str) -> date:
    return d if isinstance(d, date) else date.fromisoformat(str(d))


def _chunks(connector: Connector, days: list[date], chunk_days: int, max_chunk_bytes: int | None) -> list[list[date]]:
    """Consecutive days, at most ``chunk_days`` a chunk and, when the connector can tell the size of a day's files,
    at most ``max_chunk_bytes`` of them (a chunk is validated in memory at once: a 200-store chain's month would
    not fit; a single larger day still makes its own chunk)."""
    size = getattr(connector, "day_bytes", None)
    chunks: list[list[date]] = []
    current: list[date] = []
    held = 0
    for d in days:
        n = size(d) if (size is not None and max_chunk_bytes) else 0
        if current and (len(current) >= max(1, chunk_days) or (max_chunk_bytes and held + n > max_chunk_bytes)):
            chunks.append(current)
            current, held = [], 0
        current.append(d)
        held += n
    if current:
        chunks.append(current)
    return chunks


def load_days(
    engine: Engine,
    connector: Connector,
    dates: Iterable[date | str],
    progress: Progress | None = None,
    *,
    chunk_days: int = 31,
    max_chunk_bytes: int | None = 32 * 2**20,
    schema: str = RAW_SCHEMA,
    entities: Iterable[str] | None = None,
    workers: int | None = None,
) -> LoadSummary:
    """Load many business days; each chunk of at most ``chunk_days`` days (and ``max_chunk_bytes`` of export files,
    when the connector knows their size) is one all-or-nothing transaction, committed in date order.

    With more than one chunk and a connector that allows it (``parallel_read``), chunks are read and validated in
    ``workers`` processes (default: ``extract_workers`` setting, one per core) while this process writes the
    previous ones: parsing and validation are CPU-bound Python, the database mostly waits.

    Raises ExportFileError on an unusable file: the failing chunk writes nothing; chunks before it
    stay committed (re-running is idempotent).
    """
    schema = check_ident(schema)
    t0 = time.perf_counter()
    days = sorted({_as_date(d) for d in dates})
    specs = list(connector.entities)
    if entities is not None:
        wanted = set(entities)
        specs = [s for s in specs if s.name in wanted or s.entity in wanted]
    prepare_raw_schema(engine, schema)
    total = LoadSummary(connector=connector.name)
    done = 0
    if progress:
        progress(0, len(days))
    chunks = _chunks(connector, days, chunk_days, max_chunk_bytes)
    for chunk, prepared in _prepared_in_order(connector, specs, chunks, _worker_count(connector, chunks, workers)):
        _write(engine, schema, specs, chunk, prepared)
        total.merge(prepared.summary)
        done += len(chunk)
        if progress:
            progress(done, len(days))
    total.seconds = time.perf_counter() - t0
    log.info("loaded %s", total.to_dict())
    return total


def _worker_count(connector: Connector, chunks: list[list[date]], workers: int | None) -> int:
    # a daemonic process (a Celery prefork pool worker) may not start children: prepare in-process there
    if len(chunks) < 2 or not getattr(connector, "parallel_read", False) or multiprocessing.current_process().daemon:
        return 1
    if workers is None:
        from replenish.settings import get_settings

        workers = get_settings().extract_workers or os.cpu_count() or 1
    return max(1, min(workers, len(chunks)))


def _prepared_in_order(connector: Connector, specs: Sequence[EntitySpec], chunks: list[list[date]],
                       workers: int) -> Iterator[tuple[list[date], _Chunk]]:
    """Prepared chunks in date order. In parallel, at most ``workers + 1`` chunks are in flight (memory stays
    bounded); a worker's error is raised when its chunk's turn comes, so every earlier chunk is written first."""
    if workers <= 1:
        for chunk in chunks:
            yield chunk, _prepare_chunk(connector, specs, chunk)
        return
    from concurrent.futures import Future, ProcessPoolExecutor

    # spawn, not fork: the caller holds database connections and may run threads (Airflow, SQLAlchemy pools)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending: deque[tuple[list[date], Future[_Chunk]]] = deque()
        todo = iter(chunks)
        for chunk in itertools.islice(todo, workers + 1):
            pending.append((chunk, pool.submit(_prepare_chunk, connector, specs, chunk)))
        while pending:
            chunk, future = pending.popleft()
            prepared = future.result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_prepare_chunk, connector, specs, nxt)))
            yield chunk, prepared
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


QUARANTINE_SHOWN = 20


def quarantined_rows(engine: Engine, days: Sequence[date], *, schema: str = RAW_SCHEMA,
                     limit: int = QUARANTINE_SHOWN) -> list[dict[str, Any]]:
    """The first quarantined rows of these days, in file and line order: a person running a load reads which rows
    were refused and why (file, line, field, reason), not only how many; all of them stay in ``<schema>.quarantine``.
    """
    check_ident(schema)
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"select business_date, source_file, line_no, field, reason from {schema}.quarantine "
                 "where business_date = any(:days) order by business_date, source_file, line_no limit :n"),
            {"days": list(days), "n": limit},
        ).mappings().all()
    return [{"business_date": r["business_date"].isoformat(), "file": r["source_file"], "line": r["line_no"],
             "field": r["field"], "reason": r["reason"]} for r in rows]


def load_day(
    engine: Engine,
    connector: Connector,
    business_date: date | str,
    *,
    schema: str = RAW_SCHEMA,
    entities: Iterable[str] | None = None,
) -> LoadSummary:
    """Load one business day in one transaction (nothing written if any file is unusable)."""
    return load_days(engine, connector, [business_date], schema=schema, entities=entities)

"""The malformed-export corpus (tests/support/extract_corpus.py) through the real loader and the real database.

Each case is its own business day in one throw-away raw schema: a quarantine case must load the day with exactly the
expected quarantine rows (file, line, field, reason) and balanced load batches; a refused case must raise
ExportFileError naming file and line, and leave the day exactly as its earlier, valid delivery loaded it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from support import extract_corpus, extract_fixtures

from replenish.database import engine as db_engine
from replenish.extract import ENTITIES, CsvExportConnector, ExportFileError, load_day, load_days
from replenish.extract.contract import get_entity

CASES = extract_corpus.CASES
FIRST_DAY = date(2018, 1, 1)
DAY = {c.name: FIRST_DAY + timedelta(days=i) for i, c in enumerate(CASES)}
# what a reason must never look like: a driver's or the database's words, a traceback
INTERNALS = re.compile(r"Traceback|psycopg|COPY |Error\b|CharacterNotInRepertoire|InvalidTimeZone|line \d+, column")


def test_the_corpus_is_large_and_covers_both_outcomes():
    assert len(CASES) >= 60
    assert sum(c.refused for c in CASES) >= 10 and sum(not c.refused for c in CASES) >= 50
    assert len({c.file for c in CASES}) >= 8


@dataclass
class Corpus:
    broken: Path  # every case's day with its malformed file
    clean: Path  # the same days, valid (the earlier delivery a refused re-delivery must not damage)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    base = tmp_path_factory.mktemp("corpus")
    for c in CASES:
        extract_fixtures.write_export_day(base / "broken", DAY[c.name], {c.file: c.content})
        if c.refused:
            extract_fixtures.write_export_day(base / "clean", DAY[c.name])
    return Corpus(base / "broken", base / "clean")


@pytest.fixture(scope="module")
def eng():
    return db_engine()


@pytest.fixture(scope="module")
def schema(eng) -> Iterator[str]:
    name = f"raw_c{uuid.uuid4().hex[:10]}"
    yield name
    with eng.begin() as conn:
        conn.exec_driver_sql(f"drop schema if exists {name} cascade")


def _day_state(eng, schema: str, d: date) -> dict[str, list]:
    """Everything the raw layer holds for day ``d`` (batch ids and load times left out)."""
    out = {}
    with eng.connect() as c:
        for e in ENTITIES:
            cols = ", ".join(e.column_names)
            out[e.name] = c.exec_driver_sql(
                f"select {cols}, _source_file, _source_line from {schema}.{e.name} where _business_date = %(d)s "
                "order by _source_line", {"d": d}).fetchall()
        out["quarantine"] = c.exec_driver_sql(
            f"select entity, source_file, line_no, field, reason, raw_record::text from {schema}.quarantine "
            "where business_date = %(d)s order by entity, line_no", {"d": d}).fetchall()
        out["load_batches"] = c.exec_driver_sql(
            f"select entity, source_file, rows_in_file, rows_loaded, rows_quarantined from {schema}.load_batches "
            "where business_date = %(d)s order by entity", {"d": d}).fetchall()
    return out


def _records(case: extract_corpus.Case) -> int:
    if case.records is not None:
        return case.records
    assert isinstance(case.content, str)
    return sum(1 for ln in case.content.split("\n") if ln) - 1  # not splitlines(): \x85 and \x0c are no line ends


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_export(case: extract_corpus.Case, corpus: Corpus, eng, schema: str) -> None:
    d = DAY[case.name]
    suffix = f"{d.isoformat()}/{case.file}"
    if isinstance(case.expect, extract_corpus.Refused):
        load_day(eng, CsvExportConnector(corpus.clean), d, schema=schema)
        before = _day_state(eng, schema, d)
        assert before["load_batches"] and not before["quarantine"]
        with pytest.raises(ExportFileError) as ei:  # any other exception (a database error) fails the test
            load_day(eng, CsvExportConnector(corpus.broken), d, schema=schema)
        err, want = ei.value, case.expect
        assert err.source.endswith(suffix), err
        assert err.line == want.line and want.message in err.message, str(err)
        assert str(err).startswith(err.source + (f": line {want.line}: " if want.line else ": "))
        assert want.column is None or err.column == want.column
        assert not INTERNALS.search(str(err)) and str(err).isprintable()
        assert _day_state(eng, schema, d) == before  # nothing of the broken delivery, the earlier one intact
        return

    summary = load_day(eng, CsvExportConnector(corpus.broken), d, schema=schema)
    state = _day_state(eng, schema, d)
    entity = get_entity(*case.file.removesuffix(".csv").split("/")).name
    got = [(e, line, fld, reason) for e, src, line, fld, reason, _ in state["quarantine"]]
    assert all(src.endswith(suffix) for e, src, *_ in state["quarantine"])
    assert [(e, line, fld) for e, line, fld, _ in got] == [(entity, q.line, q.field) for q in case.expect], got
    for (_, _, _, reason), q in zip(got, case.expect, strict=True):
        assert q.reason in reason, reason
        assert reason.isprintable() and not INTERNALS.search(reason), reason
    # balanced batches: every row of every file is loaded or quarantined, and the tables hold exactly the loaded ones
    assert len(state["load_batches"]) == len(ENTITIES)
    for e, _src, n, loaded, quarantined in state["load_batches"]:
        assert loaded + quarantined == n, e
        assert len(state[e]) == loaded, e
        assert quarantined == sum(1 for row in got if row[0] == e), e
        if e == entity:
            assert n == _records(case) and quarantined == len(case.expect)
    assert summary.rows_loaded + summary.rows_quarantined == summary.rows_in_files
    for column, value in case.loaded.items():
        pg_type = get_entity(entity).column(column).pg_type
        with eng.connect() as c:
            n = c.exec_driver_sql(
                f"select count(*) from {schema}.{entity} where _business_date = %(d)s "
                f"and {column} = cast(%(v)s as {pg_type})", {"d": d, "v": value}).scalar()
        assert n == 1, f"{column}={value!r} did not load"
    for *_, raw in state["quarantine"]:
        assert "\\u0000" not in raw  # NUL kept as U+2400 (jsonb cannot hold it)


def test_nul_in_raw_record_is_kept_visible(corpus: Corpus, eng, schema: str) -> None:
    d = DAY["text-nul-store-name"]
    load_day(eng, CsvExportConnector(corpus.broken), d, schema=schema)
    with eng.connect() as c:
        raw = c.exec_driver_sql(f"select raw_record ->> 'store_name' from {schema}.quarantine "
                                "where business_date = %(d)s", {"d": d}).scalar()
    assert raw == "Markt\u2400Nord"


def test_corpus_loaded_by_worker_processes_equals_serial(corpus: Corpus, eng) -> None:
    """The quarantine cases as one history: two worker processes load the same rows and quarantine as one."""
    days = [DAY[c.name] for c in CASES if not c.refused]
    names = [f"raw_p{uuid.uuid4().hex[:10]}", f"raw_s{uuid.uuid4().hex[:10]}"]
    try:
        par = load_days(eng, CsvExportConnector(corpus.broken), days, chunk_days=8, schema=names[0], workers=2)
        ser = load_days(eng, CsvExportConnector(corpus.broken), days, chunk_days=8, schema=names[1], workers=1)
        assert par.to_dict()["per_entity"] == ser.to_dict()["per_entity"]
        assert par.rows_quarantined == ser.rows_quarantined >= len(days)
        for d in days:
            assert _day_state(eng, names[0], d) == _day_state(eng, names[1], d), d
    finally:
        with eng.begin() as conn:
            for n in names:
                conn.exec_driver_sql(f"drop schema if exists {n} cascade")


def _fuzz_values(type_: str):
    """Near-valid text per column type (hypothesis strategies): the shapes the checks look at, with values around
    every limit (years, months, days, hours, UTC offsets, digits, exponents), plus arbitrary text."""
    from hypothesis import strategies as st

    def n(lo: int, hi: int, width: int) -> st.SearchStrategy[str]:
        return st.integers(lo, hi).map(lambda v: f"{v:0{width}d}")

    date = st.tuples(n(1890, 2110, 4), n(0, 13, 2), n(0, 32, 2)).map("-".join)
    offset = st.one_of(st.just("Z"), st.tuples(st.sampled_from("+-"), n(0, 24, 2), st.sampled_from(["", ":"]),
                                               st.one_of(st.just(""), n(0, 61, 2))).map("".join))
    clock = st.tuples(n(0, 25, 2), n(0, 60, 2), st.sampled_from(["", ":00", ":59.999999999", ":60"])).map(
        lambda t: f"{t[0]}:{t[1]}{t[2]}")
    shaped = {
        "int": st.from_regex(r"[+-]?0{0,5}[0-9]{1,20}", fullmatch=True),
        "numeric": st.from_regex(r"[+-]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][+-]?[0-9]{1,12})?",
                                 fullmatch=True),
        "date": date,
        "timestamptz": st.tuples(date, st.sampled_from("T "), clock, offset).map("".join),
        "bool": st.sampled_from(["true", "FALSE", "True", " false ", "t", "1", "yes"]),
        "text": st.text(max_size=40),
    }[type_]
    return st.one_of(shaped, st.text(max_size=12))


@pytest.mark.parametrize("type_", ["int", "numeric", "date", "timestamptz", "text", "bool"])
def test_every_value_validation_admits_is_one_postgres_takes(eng, type_: str) -> None:
    """Generated values (hypothesis, derandomized) through the column check, then the accepted ones through the
    same COPY path into a column of the type: PostgreSQL refuses none of them."""
    import pandas as pd
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from replenish.bulk import copy_payload, csv_payload
    from replenish.extract.contract import PG_TYPES, Column
    from replenish.extract.loader import _validate_column

    loaded: list[int] = []

    @given(values=st.lists(_fuzz_values(type_), min_size=20, max_size=80))
    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(values: list[str]) -> None:
        out, reason = _validate_column(Column("v", type_), pd.Series(values, dtype="string[pyarrow]"))
        accepted = out[reason.isna() & out.notna()]
        if accepted.empty:
            return
        with eng.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            cur.execute(f"create temporary table fuzz (v {PG_TYPES[type_]}) on commit drop")
            loaded.append(copy_payload(cur, "fuzz", csv_payload(pd.DataFrame({"v": accepted.astype(object)}))))

    check()
    assert sum(loaded) >= 50  # the generated values reached the database, not only the rejections

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from support import extract_fixtures

from replenish.database import engine as db_engine
from replenish.extract import (
    ENTITIES,
    CsvExportConnector,
    ExportFileError,
    MmsDatabaseConnector,
    entities_for,
    get_entity,
    load_day,
    load_days,
    populate_mms_source,
    prepare_raw_schema,
)

D = date(2019, 4, 29)
data_lines = extract_fixtures.data_lines
write_export_day = extract_fixtures.write_export_day
export_day = extract_fixtures.export_day  # pytest fixtures re-exported into this module
raw_schema = extract_fixtures.raw_schema


@pytest.fixture(scope="module")
def eng():
    return db_engine()


def q(eng, sql: str):
    with eng.connect() as c:
        return c.exec_driver_sql(sql).fetchall()


def counts(eng, schema: str) -> dict[str, int]:
    out = {}
    with eng.connect() as c:
        for e in ENTITIES:
            out[e.name] = c.exec_driver_sql(f"select count(*) from {schema}.{e.name}").scalar()
        out["quarantine"] = c.exec_driver_sql(f"select count(*) from {schema}.quarantine").scalar()
        out["load_batches"] = c.exec_driver_sql(f"select count(*) from {schema}.load_batches").scalar()
    return out


def quarantine(eng, schema: str) -> pd.DataFrame:
    with eng.connect() as c:
        rows = (
            c.exec_driver_sql(
                "select entity, source_file, line_no, field, reason, raw_record "
                f"from {schema}.quarantine order by entity, line_no"
            )
            .mappings()
            .all()
        )
    return pd.DataFrame(rows, columns=["entity", "source_file", "line_no", "field", "reason", "raw_record"])


def test_contract_covers_all_files():
    assert len(ENTITIES) == 12
    assert {e.system for e in ENTITIES} == {"pos", "mms"}
    assert get_entity("pos", "sales_lines").key == ("receipt_id",)
    c = get_entity("mms_item_suppliers").column("service_level")
    assert (c.min, c.min_inclusive, c.max, c.max_inclusive) == (0, False, 1, False)


def test_clean_load(eng, export_day: Path, raw_schema: str):
    s = load_day(eng, CsvExportConnector(export_day), D, schema=raw_schema)
    assert s.days == 1 and s.files == 12 and s.rows_quarantined == 0
    c = counts(eng, raw_schema)
    for e in ENTITIES:
        assert c[e.name] == data_lines(export_day / D.isoformat() / e.relative_path), e.name
        assert s.per_entity[e.name].rows_loaded == c[e.name]
    assert c["quarantine"] == 0 and c["load_batches"] == 12
    row = q(eng, f"select store_name, is_active, opened_date from {raw_schema}.mms_stores where store_id = 2")[0]
    assert row == ("Markt Süd, Altstadt", True, date(2017, 9, 15))
    ts = q(
        eng,
        f"select sold_at, _source_line, _business_date from {raw_schema}.pos_sales_lines "
        f"where receipt_id = 'R2019-04-29-1'",
    )[0]
    assert ts[0] == datetime(2019, 4, 29, 7, 15, tzinfo=UTC)
    assert ts[1] == 2 and ts[2] == D
    # optional empty values become NULL
    assert q(eng, f"select max_order_qty from {raw_schema}.mms_item_suppliers where item_id = 101")[0][0] is None


def test_rerun_is_idempotent(eng, export_day: Path, raw_schema: str):
    conn = CsvExportConnector(export_day)
    s1 = load_day(eng, conn, D, schema=raw_schema)
    c1 = counts(eng, raw_schema)
    s2 = load_day(eng, conn, D, schema=raw_schema)
    assert counts(eng, raw_schema) == c1
    assert s1.rows_loaded == s2.rows_loaded
    prepare_raw_schema(eng, raw_schema)  # idempotent


def test_text_in_quantity_and_impossible_date_are_quarantined(eng, tmp_path: Path, raw_schema: str):
    root = tmp_path / "exports"
    write_export_day(
        root,
        D,
        {
            "pos/sales_lines.csv": (
                "receipt_id,store_id,item_id,sold_at,quantity,unit_price,amount,weekday\n"
                "R1,1,100,2019-04-29T09:15:00+02:00,2,1.49,2.98,Mon\n"
                "R2,1,101,2019-04-29T10:30:00+02:00,two,0.99,0.99,Mon\n"
                "R3,1,101,2019-04-29T10:31:00+02:00,-1,0.99,0.99,Mon\n"
            ),
            "pos/waste_lines.csv": (
                "store_id,item_id,waste_date,quantity,reason\n1,100,2019-02-30,1,expired\n1,101,2019-04-29,1,expired\n"
            ),
        },
    )
    s = load_day(eng, CsvExportConnector(root), D, schema=raw_schema)
    qr = quarantine(eng, raw_schema)
    sales = qr[qr.entity == "pos_sales_lines"].reset_index(drop=True)
    assert list(sales.line_no) == [3, 4]
    assert list(sales.field) == ["quantity", "quantity"]
    assert "not a number" in sales.reason[0] and "'two'" in sales.reason[0]
    assert ">= 0" in sales.reason[1]
    assert sales.raw_record[0]["receipt_id"] == "R2" and sales.raw_record[0]["quantity"] == "two"
    assert sales.source_file[0].endswith("2019-04-29/pos/sales_lines.csv")
    waste = qr[qr.entity == "pos_waste_lines"].reset_index(drop=True)
    assert len(waste) == 1 and waste.line_no[0] == 2 and waste.field[0] == "waste_date"
    assert "impossible date" in waste.reason[0]
    assert s.per_entity["pos_sales_lines"].rows_loaded == 1
    assert s.per_entity["pos_waste_lines"].rows_loaded == 1
    assert q(eng, f"select receipt_id from {raw_schema}.pos_sales_lines") == [("R1",)]


def test_duplicate_receipt_is_quarantined(eng, tmp_path: Path, raw_schema: str):
    root = tmp_path / "exports"
    write_export_day(
        root,
        D,
        {
            "pos/sales_lines.csv": (
                "receipt_id,store_id,item_id,sold_at,quantity,unit_price,amount,weekday\n"
                "R1,1,100,2019-04-29T09:15:00+02:00,2,1.49,2.98,Mon\n"
                "R2,1,101,2019-04-29T10:30:00+02:00,1,0.99,0.99,Mon\n"
                "R1,1,100,2019-04-29T09:15:00+02:00,2,1.49,2.98,Mon\n"
            ),
        },
    )
    load_day(eng, CsvExportConnector(root), D, schema=raw_schema)
    assert q(eng, f"select receipt_id, _source_line from {raw_schema}.pos_sales_lines order by 2") == [
        ("R1", 2),
        ("R2", 3),
    ]
    qr = quarantine(eng, raw_schema)
    assert len(qr) == 1 and qr.line_no[0] == 4 and qr.field[0] == "receipt_id"
    assert "duplicate key receipt_id=R1" in qr.reason[0] and "line 2" in qr.reason[0]


def test_missing_required_column_fails_file_and_writes_nothing(eng, tmp_path: Path, raw_schema: str):
    root = tmp_path / "exports"
    write_export_day(root, D)
    conn = CsvExportConnector(root)
    load_day(eng, conn, D, schema=raw_schema)
    before = counts(eng, raw_schema)
    # second day is fine except stores.csv lacks the required column "city"
    d2 = date(2019, 4, 30)
    write_export_day(
        root, d2, {"mms/stores.csv": "store_id,store_name,region,opened_date,is_active\n1,A,HH,2015-03-01,true\n"}
    )
    with pytest.raises(ExportFileError) as ei:
        load_day(eng, conn, d2, schema=raw_schema)
    msg = str(ei.value)
    assert "2019-04-30/mms/stores.csv" in msg and "'city'" in msg and ei.value.column == "city"
    assert counts(eng, raw_schema) == before  # nothing of that day (and the earlier day intact)
    # re-delivering D with a broken file also leaves the previously loaded D untouched
    write_export_day(root, D, {"mms/stores.csv": "store_id,store_name\n1,A\n"})
    with pytest.raises(ExportFileError):
        load_day(eng, conn, D, schema=raw_schema)
    assert counts(eng, raw_schema) == before


def test_empty_file_raises(eng, tmp_path: Path, raw_schema: str):
    root = tmp_path / "exports"
    write_export_day(root, D, {"mms/promotions.csv": b""})
    with pytest.raises(ExportFileError, match=r"mms/promotions\.csv.*empty"):
        load_day(eng, CsvExportConnector(root), D, schema=raw_schema)
    assert q(eng, f"select count(*) from {raw_schema}.pos_sales_lines")[0][0] == 0


def test_missing_and_undecodable_files_raise(eng, tmp_path: Path, raw_schema: str):
    root = tmp_path / "exports"
    write_export_day(root, D, {"mms/weather.csv": None})
    with pytest.raises(ExportFileError, match=r"mms/weather\.csv.*missing"):
        load_day(eng, CsvExportConnector(root), D, schema=raw_schema)
    write_export_day(
        root, D, {"mms/weather.csv": b"store_id,weather_date,rain_mm,temperature_c,is_forecast\n1,\xff\xfe,1,1,true\n"}
    )
    with pytest.raises(ExportFileError, match=r"mms/weather\.csv.*UTF-8"):
        load_day(eng, CsvExportConnector(root), D, schema=raw_schema)


def test_header_only_file_is_an_empty_day(eng, tmp_path: Path, raw_schema: str):
    root = tmp_path / "exports"
    write_export_day(root, D, {"pos/waste_lines.csv": "store_id,item_id,waste_date,quantity,reason\n"})
    s = load_day(eng, CsvExportConnector(root), D, schema=raw_schema)
    assert s.per_entity["pos_waste_lines"].files == 1
    assert s.per_entity["pos_waste_lines"].rows_in_file == 0


def test_loaded_plus_quarantined_equals_lines(eng, tmp_path: Path, raw_schema: str):
    root = tmp_path / "exports"
    write_export_day(
        root,
        D,
        {
            "mms/items.csv": (
                "item_id,item_name,category,shelf_life_days,unit_price,unit_cost,is_active,extra_col\n"
                "100,Milk,dairy,7,1.49,0.95,true,x\n"
                "101,Bread,bakery,0,0.99,0.40,true,x\n"  # shelf_life < 1
                "102,Eggs,dairy,14,0,1,true,x\n"  # unit_price not > 0
                "103,Salt,dry,365,0.5,0.2,yes,x\n"  # bad bool
                "104,Sugar,dry,365,0.5,0.2,true\n"  # wrong field count
                "105,,dry,365,0.5,0.2,true,x\n"  # required empty
                "abc,Flour,dry,365,0.5,0.2,true,x\n"  # bad int
            ),
            "mms/item_suppliers.csv": (
                "item_id,supplier_id,pack_size,moq,min_order_value,lead_time_days,order_weekdays,cutoff_time,max_order_qty,service_level\n"
                "100,10,6,12,50,2,1|3|8,14:00,240,0.95\n"
                "101,11,10,0,0,1,1|2,25:00,,0.9\n"
                "102,11,10,0,0,1,1|2,10:00,,1\n"
                "103,11,10,0,0,1,1|2,10:00,,0.5\n"
            ),
            "mms/suppliers.csv": (
                "supplier_id,supplier_name,channel,email,api_url,allows_auto_order\n10,Dairy Co,fax,,,true\n"
            ),
        },
    )
    s = load_day(eng, CsvExportConnector(root), D, schema=raw_schema)
    batches = q(
        eng, f"select entity, source_file, rows_in_file, rows_loaded, rows_quarantined from {raw_schema}.load_batches"
    )
    assert len(batches) == 12
    for entity, src, n, loaded, quar in batches:
        assert loaded + quar == n == data_lines(Path(src)), entity
        assert q(eng, f"select count(*) from {raw_schema}.{entity}")[0][0] == loaded
        assert q(eng, f"select count(*) from {raw_schema}.quarantine where entity = '{entity}'")[0][0] == quar
    assert s.per_entity["mms_items"].rows_loaded == 1
    assert s.per_entity["mms_items"].rows_quarantined == 6
    assert s.per_entity["mms_item_suppliers"].rows_loaded == 1
    assert s.per_entity["mms_suppliers"].rows_quarantined == 1
    assert s.rows_loaded + s.rows_quarantined == s.rows_in_files
    qr = quarantine(eng, raw_schema)
    items = qr[qr.entity == "mms_items"]
    fields = dict(zip(items.line_no, items.field, strict=True))
    assert fields == {3: "shelf_life_days", 4: "unit_price", 5: "is_active", 6: None, 7: "item_name", 8: "item_id"}


def test_load_days_chunks_and_progress(eng, tmp_path: Path, raw_schema: str):
    root = tmp_path / "exports"
    days = [date(2019, 4, 27), date(2019, 4, 28), date(2019, 4, 29)]
    for d in days:
        write_export_day(root, d)
    seen = []
    s = load_days(
        eng, CsvExportConnector(root), days, progress=lambda a, b: seen.append((a, b)), chunk_days=2, schema=raw_schema
    )
    assert seen == [(0, 3), (2, 3), (3, 3)]
    assert s.days == 3 and s.files == 36
    assert q(eng, f"select count(distinct _business_date) from {raw_schema}.pos_sales_lines")[0][0] == 3
    assert s.to_dict()["per_entity"]["pos_sales_lines"]["rows_loaded"] == 9


def _raw_snapshot(eng, schema: str) -> dict[str, list]:
    """Every raw table's rows (without the per-load batch ids), plus quarantine and load counts."""
    out = {}
    with eng.connect() as c:
        for e in ENTITIES:
            cols = ", ".join(e.column_names)
            out[e.name] = c.exec_driver_sql(
                f"select {cols}, _business_date, _source_file, _source_line from {schema}.{e.name} order by 1, 2, 3"
            ).fetchall()
        out["quarantine"] = c.exec_driver_sql(
            f"select business_date, entity, line_no, field, reason from {schema}.quarantine order by 1, 2, 3"
        ).fetchall()
        out["load_batches"] = c.exec_driver_sql(
            f"select business_date, entity, rows_in_file, rows_loaded, rows_quarantined from {schema}.load_batches "
            "order by 1, 2"
        ).fetchall()
    return out


def test_history_chunks_prepared_in_worker_processes_load_the_same_rows(eng, tmp_path: Path, raw_schema: str):
    root = tmp_path / "exports"
    days = [date(2019, 4, 26), date(2019, 4, 27), date(2019, 4, 28), date(2019, 4, 29)]
    for d in days:
        write_export_day(root, d)
    # one bad row, so that quarantine rows also cross the process boundary
    write_export_day(root, days[1], {"pos/waste_lines.csv": "store_id,item_id,waste_date,quantity,reason\n"
                                                             "1,100,2019-02-30,1,expired\n1,101,2019-04-27,1,expired\n"})
    other = f"{raw_schema}_serial"
    try:
        seen = []
        s_par = load_days(eng, CsvExportConnector(root), days, progress=lambda a, b: seen.append((a, b)),
                          chunk_days=1, schema=raw_schema, workers=2)
        s_ser = load_days(eng, CsvExportConnector(root), days, chunk_days=1, schema=other, workers=1)
        assert seen == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
        assert s_par.to_dict()["per_entity"] == s_ser.to_dict()["per_entity"] and s_par.rows_quarantined >= 1
        assert _raw_snapshot(eng, raw_schema) == _raw_snapshot(eng, other)
    finally:
        with eng.begin() as c:
            c.exec_driver_sql(f"drop schema if exists {other} cascade")


def test_a_bad_file_in_a_parallel_history_keeps_the_earlier_chunks_and_writes_nothing_of_its_own(
    eng, tmp_path: Path, raw_schema: str
):
    root = tmp_path / "exports"
    days = [date(2019, 4, 26), date(2019, 4, 27), date(2019, 4, 28), date(2019, 4, 29)]
    for d in days:
        write_export_day(root, d)
    write_export_day(root, days[2], {"mms/stores.csv": "store_id,store_name\n1,A\n"})
    with pytest.raises(ExportFileError) as ei:
        load_days(eng, CsvExportConnector(root), days, chunk_days=1, schema=raw_schema, workers=2)
    assert "2019-04-28/mms/stores.csv" in str(ei.value) and ei.value.column == "city"   # intact across processes
    loaded = q(eng, f"select distinct business_date from {raw_schema}.load_batches order by 1")
    assert [r[0] for r in loaded] == days[:2]
    assert q(eng, f"select count(distinct _business_date) from {raw_schema}.pos_sales_lines")[0][0] == 2


def _mms_snapshot(eng, schema: str) -> dict[str, list]:
    out = {}
    with eng.connect() as c:
        for e in entities_for("mms"):
            cols = ", ".join(e.column_names)
            out[e.name] = c.exec_driver_sql(
                f"select {cols}, _business_date from {schema}.{e.name} order by {cols}"
            ).fetchall()
    return out


def test_mms_database_connector_matches_csv(eng, tmp_path: Path, raw_schema: str):
    root = tmp_path / "exports"
    days = [date(2019, 4, 28), date(2019, 4, 29)]
    for d in days:
        write_export_day(root, d)
    src = f"{raw_schema}_src"
    other = f"{raw_schema}_b"
    try:
        n = populate_mms_source(eng, root, schema=src)
        assert n["mms_weather"] == 8
        s_csv = load_days(eng, CsvExportConnector(root, systems=["mms"]), days, schema=raw_schema)
        s_db = load_days(eng, MmsDatabaseConnector(eng, schema=src), days, schema=other)
        assert s_db.files == s_csv.files == 18
        assert s_db.rows_loaded == s_csv.rows_loaded and s_db.rows_quarantined == 0
        a, b = _mms_snapshot(eng, raw_schema), _mms_snapshot(eng, other)
        assert a == b and all(a[k] for k in a)
        # connectors plug into the same raw schema: the db reload replaces, never duplicates
        load_days(eng, MmsDatabaseConnector(eng, schema=src), days, schema=raw_schema)
        assert _mms_snapshot(eng, raw_schema) == a
    finally:
        with eng.begin() as c:
            c.exec_driver_sql(f"drop schema if exists {src} cascade")
            c.exec_driver_sql(f"drop schema if exists {other} cascade")


def test_chunks_bounded_by_days_and_export_bytes():
    from replenish.extract.loader import _chunks

    class Sized:
        def day_bytes(self, d):
            return 10 if d.day != 5 else 100  # day 5 alone is larger than a chunk

    days = [date(2019, 4, d) for d in range(1, 11)]
    assert [len(c) for c in _chunks(object(), days, 4, 25)] == [4, 4, 2]  # no sizes: days only
    assert [[d.day for d in c] for c in _chunks(Sized(), days, 31, 25)] == [[1, 2], [3, 4], [5], [6, 7], [8, 9],
                                                                              [10]]
    assert sum(_chunks(Sized(), days, 31, None), []) == days


@pytest.mark.parametrize("mixed", [False, True], ids=["arrow-writer", "fallback-writer"])
def test_copy_payload_round_trips_awkward_text_and_nulls(eng, mixed: bool):
    """The COPY text of a chunk gives back exactly its values: quotes, separators, line breaks, non-ASCII, NULL.
    A column Arrow cannot type (mixed Python objects) takes the pandas writer, with the same result."""
    from replenish.bulk import copy_payload, csv_payload

    values = ['plain', 'say "hi"', 'a,b', 'two\nlines', 'Brötchen €', None, ' padded ', "'single'", '\\N']
    df = pd.DataFrame({"v": values, "n": [1 if mixed and i == 0 else str(i) for i in range(len(values))]})
    payload = csv_payload(df)
    assert payload.rows == len(values)
    with eng.begin() as conn:
        cur = conn.connection.driver_connection.cursor()
        cur.execute("create temporary table payload_rt (v text, n text) on commit drop")
        assert copy_payload(cur, "payload_rt", payload) == len(values)
        cur.execute("select v, n from payload_rt")
        got = cur.fetchall()
    assert got == [(v, str(n)) for v, n in zip(values, df["n"], strict=True)]


def test_validation_normalises_and_rejects_values_as_the_contract_says():
    """Column checks on awkward text: canonical integers, offsets completed, overflowing numbers and impossible
    dates rejected with the reason, database values (not text) read as the text a file would hold."""
    import dataclasses

    from replenish.extract import validate_frame
    from replenish.extract.contract import Column

    spec = dataclasses.replace(ENTITIES[0], entity="check", key=("k",), columns=(
        Column("k", "int", required=True), Column("q", "numeric", min=0, min_inclusive=False),
        Column("d", "date"), Column("t", "timestamptz"), Column("b", "bool")))
    df = pd.DataFrame({
        "k": [" +05 ", "7", "2147483648", "x1", "9", 10],
        "q": ["1.5", "1e400", "0", "2", "-1", 2.5],
        "d": ["2019-04-29", "", "2019-02-29", "2019-04-29", "2019-4-29", date(2019, 4, 29)],
        "t": ["2019-04-29T10:00:00+02", "2019-04-29T10:00Z", "", "", "2019-04-29T25:00:00+00:00", None],
        "b": ["TRUE", "false", "", "", "yes", True],
    })
    v = validate_frame(spec, df)
    rows = [(None if pd.isna(f) else f, None if pd.isna(r) else r) for f, r in zip(v.field, v.reason, strict=True)]
    assert rows == [
        (None, None),
        ("q", "number out of range (beyond a double's range): '1e400'"),
        ("k", "integer out of range (-2147483648..2147483647): '2147483648'"),
        ("k", "not an integer: 'x1'"),
        ("q", "must be > 0: '-1'"),
        (None, None),
    ]
    ok = v.values[v.ok].astype(object).where(v.values[v.ok].notna(), None)
    assert ok.to_dict("records") == [
        {"k": "5", "q": "1.5", "d": "2019-04-29", "t": "2019-04-29T10:00:00+02:00", "b": "true"},
        {"k": "10", "q": "2.5", "d": "2019-04-29", "t": None, "b": "true"},
    ]
    assert v.values.loc[~v.ok].isna().all().all()  # a rejected row loads nothing


def test_a_value_the_database_still_refuses_names_file_line_and_field(eng, export_day: Path, raw_schema: str):
    """Validation admits only values PostgreSQL takes; should one slip through, the day is refused naming the
    export's file, line and field (not the COPY's line) and nothing of it is written."""
    from replenish.bulk import Payload
    from replenish.extract.loader import _prepare_chunk, _write

    conn = CsvExportConnector(export_day)
    load_day(eng, conn, D, schema=raw_schema)
    before = counts(eng, raw_schema)
    chunk = _prepare_chunk(conn, list(conn.entities), [D])
    sales = chunk.tables["pos_sales_lines"]
    second = sales.data.split(b"\n")[1]  # the file's line 3 (R...-2)
    chunk.tables["pos_sales_lines"] = Payload(sales.columns, sales.data.replace(
        second, second.replace(b"+02:00", b"+20:00")), sales.rows)
    with pytest.raises(ExportFileError) as ei:
        _write(eng, raw_schema, list(conn.entities), [D], chunk)
    err = ei.value
    assert err.source.endswith("2019-04-29/pos/sales_lines.csv") and err.line == 3 and err.column == "sold_at"
    assert "time zone displacement out of range" in err.message and str(err).isprintable()
    assert counts(eng, raw_schema) == before

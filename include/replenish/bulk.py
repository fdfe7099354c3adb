"""Frames into PostgreSQL through COPY: the one fast path for bulk writes (raw loads, nightly forecasts).

A payload is CSV bytes with every value quoted and NULL as an empty field; ``copy_payload`` reads it with
FORCE_NULL on every column, so a quoted "" is NULL too (we never write empty strings). Payloads are plain bytes so
they cross process boundaries cheaply (history chunks are prepared in worker processes)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection


@dataclass
class Payload:
    columns: list[str]
    data: bytes
    rows: int


def csv_payload(df: pd.DataFrame) -> Payload:
    """``df`` as COPY CSV. Arrow's C++ writer (~5x faster than pandas' to_csv, shortest round-trip floats); pandas'
    writer for a column Arrow cannot type (mixed Python objects), with the same rows."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = [str(c) for c in df.columns]
    if df.empty:
        return Payload(columns, b"", 0)
    try:
        buf = pa.BufferOutputStream()
        pacsv.write_csv(pa.Table.from_pandas(df, preserve_index=False), buf,
                        pacsv.WriteOptions(include_header=False, quoting_style="all_valid"))
        return Payload(columns, buf.getvalue().to_pybytes(), len(df))
    except pa.ArrowException:
        text = df.to_csv(index=False, header=False, quoting=csv.QUOTE_ALL, na_rep="", lineterminator="\n")
        return Payload(columns, text.encode(), len(df))


def copy_payload(cur: Any, table: str, payload: Payload) -> int:
    """COPY the payload into ``table`` on a psycopg2 cursor (inside the caller's transaction); the rows written."""
    if not payload.rows:
        return 0
    cols = ", ".join(f'"{c}"' for c in payload.columns)
    # the payload is UTF-8 whatever the server's encoding; SET LOCAL ends with the caller's transaction
    cur.execute("set local client_encoding to 'UTF8'")
    cur.copy_expert(f"copy {table} ({cols}) from stdin with (format csv, force_null ({cols}))",
                    io.BytesIO(payload.data))
    return payload.rows if cur.rowcount == -1 else int(cur.rowcount)


def copy_frame(conn: Connection, table: str, df: pd.DataFrame) -> int:
    """COPY ``df`` (its columns named as the table's) into ``table`` inside the SQLAlchemy connection's transaction."""
    dbapi = conn.connection.driver_connection
    assert dbapi is not None  # a checked-out connection always has its DBAPI connection
    return copy_payload(dbapi.cursor(), table, csv_payload(df))

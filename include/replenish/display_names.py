"""Display names of stores, suppliers and items from the marts, for what people read: the platform's pages, the
buyer digests and the order mails a supplier gets."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_NAMES_TTL_SECONDS = 60.0
_names_cache: dict[str, tuple[float, dict[str, dict[int, str]]]] = {}


def names(conn: Connection) -> dict[str, dict[int, str]]:
    """``{"store": {id: name}, "supplier": ..., "item": ...}`` (empty where the marts are not built). Cached per
    database for a minute: every page shows them, and they change with the nightly master load."""
    key = str(conn.engine.url)
    hit = _names_cache.get(key)
    if hit and time.monotonic() - hit[0] < _NAMES_TTL_SECONDS:
        return hit[1]
    out = _load_names(conn)
    _names_cache[key] = (time.monotonic(), out)
    return out


def _load_names(conn: Connection) -> dict[str, dict[int, str]]:
    out: dict[str, dict[int, str]] = {"store": {}, "supplier": {}, "item": {}}
    for kind, rel, col in (
        ("store", "marts.dim_stores", "store_name"),
        ("supplier", "marts.dim_suppliers", "supplier_name"),
        ("item", "marts.dim_items", "item_name"),
    ):
        if conn.execute(text("SELECT to_regclass(:r) IS NOT NULL"), {"r": rel}).scalar():
            rows = conn.execute(text(f"SELECT DISTINCT ON ({kind}_id) {kind}_id, {col} FROM {rel}")).all()
            out[kind] = {int(r[0]): str(r[1]) for r in rows}
    return out

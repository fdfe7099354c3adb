"""Checks of what an operator types against the warehouse: store, supplier and category ids must exist in the
marts' dimensions before a user's scope or an API key is built on them (a typo would otherwise give a store
manager an empty queue, or a key for a store that does not exist), and names must be plain.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# kind -> (dimension, column holding the id)
DIMENSIONS: dict[str, tuple[str, str]] = {
    "store": ("marts.dim_stores", "store_id"),
    "supplier": ("marts.dim_suppliers", "supplier_id"),
    "category": ("marts.dim_items", "category"),
}

# sign-in names and API key names: letters, digits and . _ @ - (no spaces, quotes, markup or control characters)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,149}")
EMAIL_RE = re.compile(r"[^@\s\x00-\x1f\x7f<>\"',;]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}")


class UnknownIds(ValueError):
    pass


def unknown(conn: Connection, kind: str, values: Sequence[int | str]) -> list:
    """The values not in the kind's dimension (store and supplier ids are integers, categories names).

    Raises UnknownIds when the dimension is not built yet: nothing can be checked then, and an unchecked id
    is what this guards against."""
    relation, column = DIMENSIONS[kind]
    if not values:
        return []
    if conn.exec_driver_sql(f"SELECT to_regclass('{relation}') IS NOT NULL").scalar() is not True:
        raise UnknownIds(
            f"cannot check {kind} ids: {relation} is not built yet (run the nightly first: replenish run --date D)"
        )
    found: set = set(
        conn.execute(
            text(f"SELECT DISTINCT {column} FROM {relation} WHERE {column} = ANY(:v)"),
            {"v": list(values)},
        ).scalars()
    )
    return [v for v in values if v not in found]


def require_known(conn: Connection, kind: str, values: Sequence[int | str]) -> None:
    missing = unknown(conn, kind, values)
    if missing:
        relation = DIMENSIONS[kind][0]
        shown = ", ".join(repr(v) for v in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise UnknownIds(f"unknown {kind} id{'s' if len(missing) > 1 else ''} {shown} (not in {relation})")


def plain_name(value: str, what: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError(
            f"{what} {value!r}: use 1-150 letters, digits and . _ @ - (starting with a letter or digit)"
        )
    return value


def plain_email(value: str) -> str:
    if len(value) > 254 or not EMAIL_RE.fullmatch(value):
        raise ValueError(f"not an e-mail address: {value!r}")
    return value

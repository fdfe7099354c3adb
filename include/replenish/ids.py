"""Store, supplier and item ids: the warehouse's integer keys, one type from the exports to the orders, the web
app and the tills. What a person or a terminal types is parsed here, once, at the edge."""

from __future__ import annotations

MAX_ID = 2_147_483_647  # PostgreSQL integer, the type of every id column


def parse_id(raw: object) -> int | None:
    """Typed input (a form field, a query parameter, a path segment) -> the id, or None when it is not one."""
    s = str(raw).strip()
    if not (s.isascii() and s.isdigit()) or len(s) > len(str(MAX_ID)):
        return None
    value = int(s)
    return value if value <= MAX_ID else None

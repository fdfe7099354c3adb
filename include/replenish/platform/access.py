"""Who is acting and which orders they may see: a SQL predicate every order query includes.

Authorization lives in the queries themselves (not in a check after loading): an order outside the
principal's scope is simply not found, so changing an id in a URL gives 404, never someone else's order.
- admin: every order;
- buyer: orders of the assigned suppliers, or containing an item of an assigned category
  (categories from marts.dim_items, when that mart exists);
- store manager and POS terminal (API key): orders of their own store(s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from replenish.platform.accounts import User
    from replenish.platform.api_keys import ApiKey


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" | "api_key"
    name: str  # username or API key name
    role: str  # admin | buyer | store_manager | terminal
    stores: tuple[int, ...] = ()
    suppliers: tuple[int, ...] = ()
    categories: tuple[str, ...] = ()
    user_id: int | None = None
    key_id: int | None = None
    display_name: str = field(default="")

    @property
    def is_central(self) -> bool:
        """Of the central team (admins, buyers): may read what covers every store (forecast reports, Data Docs)."""
        return self.role in ("admin", "buyer")

    @property
    def actor(self) -> str:
        """The name written to the audit trail (never 'system:'/'release:', which release re-decides)."""
        return self.name if self.kind == "user" else f"pos:{self.name}"

    @classmethod
    def of_user(cls, user: User) -> Principal:
        return cls(
            "user",
            user.username,
            user.role,
            stores=user.ids("store"),
            suppliers=user.ids("supplier"),
            categories=user.scope("category"),
            user_id=user.user_id,
            display_name=user.display_name or user.username,
        )

    @classmethod
    def of_key(cls, key: ApiKey) -> Principal:
        return cls("api_key", key.name, "terminal", stores=(key.store_id,), key_id=key.key_id, display_name=key.name)


def has_item_categories(conn: Connection) -> bool:
    return conn.exec_driver_sql("SELECT to_regclass('marts.dim_items') IS NOT NULL").scalar() is True


def scope_sql(p: Principal, conn: Connection, alias: str = "p") -> tuple[str, dict]:
    """(SQL boolean over orders.purchase_orders ``alias``, bind parameters) selecting what ``p`` may see."""
    if p.role == "admin":
        return "TRUE", {}
    if p.role in ("store_manager", "terminal"):
        return f"{alias}.store_id = ANY(:scope_stores)", {"scope_stores": list(p.stores)}
    if p.role == "buyer":
        clauses = [f"{alias}.supplier_id = ANY(:scope_suppliers)"]
        params: dict = {"scope_suppliers": list(p.suppliers)}
        if p.categories and has_item_categories(conn):
            clauses.append(
                f"""EXISTS (SELECT 1 FROM orders.order_lines sl JOIN marts.dim_items si
                    ON si.item_id = sl.item_id WHERE sl.order_id = {alias}.order_id
                    AND si.category = ANY(:scope_categories))"""
            )
            params["scope_categories"] = list(p.categories)
        return "(" + " OR ".join(clauses) + ")", params
    return "FALSE", {}

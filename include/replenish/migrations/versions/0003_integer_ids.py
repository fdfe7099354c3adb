"""Store, supplier and item ids are integers end to end, as in the warehouse (they were text in the orders,
the platform and the till receipts, and bigint in the forecasts).

A database whose orders hold an id that is not an integer cannot have been written by this application (its
ids come from the warehouse): the upgrade then stops on the cast and changes nothing.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# (table, id columns); every table the application writes that carries a store, supplier or item id
ID_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("orders.purchase_orders", ("store_id", "supplier_id")),
    ("orders.order_lines", ("item_id",)),
    ("orders.release_stats", ("store_id", "supplier_id")),
    ("platform.api_keys", ("store_id",)),
    ("raw.pos_receipts", ("store_id",)),
    ("forecast.forecasts", ("store_id", "item_id")),
    ("forecast.backtest_metrics", ("store_id", "item_id")),
)


def _retype(sql_type: str) -> None:
    for table, columns in ID_COLUMNS:
        if op.get_bind().exec_driver_sql(f"SELECT to_regclass('{table}')").scalar() is None:
            continue
        changes = ", ".join(f"ALTER COLUMN {c} TYPE {sql_type} USING {c}::{sql_type}" for c in columns)
        op.execute(f"ALTER TABLE {table} {changes}")


def upgrade() -> None:
    # store and supplier scopes stay text beside category names (platform.accounts reads them as integers); checked
    # before the tables are rewritten, which on a large forecast history takes a while
    bad = op.get_bind().exec_driver_sql(
        "SELECT count(*) FROM platform.user_scopes WHERE scope_type IN ('store', 'supplier') "
        "AND scope_value !~ '^[0-9]{1,10}$'"
    ).scalar()
    if bad:
        raise RuntimeError(f"{bad} store or supplier scopes in platform.user_scopes are not integer ids: "
                           "correct them (replenish users ...) and upgrade again")
    _retype("integer")


def downgrade() -> None:
    for table, columns in ID_COLUMNS:
        kind = "bigint" if table.startswith("forecast.") else "text"
        changes = ", ".join(f"ALTER COLUMN {c} TYPE {kind} USING {c}::{kind}" for c in columns)
        op.execute(f"ALTER TABLE {table} {changes}")

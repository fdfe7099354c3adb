"""The nightly's stock-out days by store, item and where the stock came from (``forecast.stockout_causes``): the
rows the accuracy verdict's per-item figures are summed from, kept per business date so a store's own page reads
its rows instead of scoring the chain's forecasts on every view.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE IF NOT EXISTS forecast.stockout_causes (
            business_date   date    NOT NULL,
            store_id        integer NOT NULL,
            item_id         integer NOT NULL,
            cause           text    NOT NULL,
            days_with_sales integer NOT NULL CHECK (days_with_sales >= 0),
            stockout_days   integer NOT NULL CHECK (stockout_days BETWEEN 0 AND days_with_sales),
            asked_share     double precision CHECK (asked_share BETWEEN 0 AND 1),
            PRIMARY KEY (business_date, store_id, item_id, cause)
        )""")


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore a backup to go back")

"""The interval calibration of a model version (ml.calibration), fitted on its backtest; also in its artifact.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE forecast.models ADD COLUMN IF NOT EXISTS calibration jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE forecast.models DROP COLUMN IF EXISTS calibration")

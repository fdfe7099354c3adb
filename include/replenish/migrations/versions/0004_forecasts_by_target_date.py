"""An index of the stored forecasts by target date: the nightly accuracy mart (``marts.fct_forecast_accuracy``)
reads the forecasts whose target dates lie in its window, which the primary key (origin date first) cannot find
without scanning every origin.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS forecasts_target_date ON forecast.forecasts (target_date)")


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore a backup to go back")

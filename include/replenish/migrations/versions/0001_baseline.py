"""Baseline: the schema of release 0.1.0, the last one without migrations (raw, ops, forecast, platform, orders).

The SQL lives in ``replenish/migrations/baseline/*.sql`` (run in file-name order), verbatim from that release.
It is idempotent, so it is also how a database built by that release joins the history: whatever exists is
kept (with its data), whatever is missing is created, and the guarded blocks carry older layouts forward.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BASELINE = Path(__file__).resolve().parent.parent / "baseline"


def upgrade() -> None:
    bind = op.get_bind()
    for sql in sorted(BASELINE.glob("*.sql")):
        # exec_driver_sql: the files hold DO $$ ... $$ blocks and '::' casts that bound-parameter parsing would mangle
        bind.exec_driver_sql(sql.read_text())


def downgrade() -> None:
    raise NotImplementedError("the baseline is not reversible: drop the schemas (or the database) instead")

"""Alembic environment: migrations run on the connection that ``replenish.migrations.upgrade`` passes in."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if context.is_offline_mode() or connection is None:
    raise RuntimeError("replenish migrations run through `replenish db upgrade` (replenish.migrations.upgrade), "
                       "which passes the connection; offline SQL generation is not supported")

# The caller's transaction is the migration's: the upgrade and its advisory lock commit together.
# The version table in public, where replenish.migrations.current() reads it, whatever the role's search_path.
context.configure(connection=connection, transactional_ddl=True, version_table_schema="public")
with context.begin_transaction():
    context.run_migrations()

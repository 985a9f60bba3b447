"""Alembic environment: runs on the connection handed over by ouipost.db.migrations."""

from __future__ import annotations

from alembic import context

from ouipost.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `python run.py migrate`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    transaction_per_migration=True,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

"""Alembic's environment for the prediction store: online migrations only, on the connection the
caller opened (`store.database.upgrade`: its engine bounds every wait, lock waits included). On
PostgreSQL a transaction-scoped advisory lock makes concurrent runs (two release steps, or
servers with DATABASE_MIGRATE=auto starting together) migrate one after another."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from imdb_sentiment.store.tables import metadata

MIGRATION_LOCK = 7_351_101  # any constant; names this project's migration lock


def run() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")  # fmt: skip
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        context.run_migrations()


run()

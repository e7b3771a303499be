"""Alembic's environment for the prediction store: online migrations only, on the URL the caller
configured (`store.database.upgrade`). On PostgreSQL a transaction-scoped advisory lock makes
concurrent start-ups (several pods at once) run the migrations one after another."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from imdb_sentiment.store.tables import metadata

MIGRATION_LOCK = 7_351_101  # any constant; names this project's migration lock


def run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite")  # fmt: skip
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            context.run_migrations()
    engine.dispose()


run()

"""Alembic's environment for the prediction store: online migrations only, on the connection the
caller opened (`store.migrate.upgrade`: its engine bounds every wait, lock waits included).

Online-safe on PostgreSQL, where the table is large and pods write it throughout: each revision
commits on its own (a lock taken by one is released before the next runs); an index is built
`CONCURRENTLY` outside any transaction (`online.create_index`), so inserts never wait for it;
a DDL statement waits for its lock at most the migration lock timeout, then `upgrade` retries.
A session-level advisory lock (it outlives the revisions' own transactions) makes concurrent
runs (two release steps, or servers with DATABASE_MIGRATE=auto starting together) migrate one
after another."""

from __future__ import annotations

import time

from alembic import context
from sqlalchemy import Connection, text

from imdb_sentiment.store.tables import metadata

MIGRATION_LOCK = 7_351_101  # any constant; names this project's migration lock
LOCK_POLL_S = 0.2


def _lock(connection: Connection) -> None:
    """Take the migration lock, waiting outside any transaction: a waiter that held a snapshot
    would be waited for by the holder's `CREATE INDEX CONCURRENTLY` (a deadlock)."""
    while True:
        taken = connection.execute(text(f"SELECT pg_try_advisory_lock({MIGRATION_LOCK})"))
        if taken.scalar():
            return
        connection.commit()
        time.sleep(LOCK_POLL_S)


def run() -> None:
    connection = context.config.attributes["connection"]
    postgres = connection.dialect.name == "postgresql"
    connection.commit()  # the caller's look at the schema: its locks and snapshot let go
    if postgres:
        _lock(connection)
    # No transaction open when Alembic looks: each revision then begins and commits its own
    # (the advisory lock is the session's, it stays).
    connection.commit()
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      transaction_per_migration=True)  # fmt: skip
    try:
        context.run_migrations()
    finally:
        if postgres:
            connection.rollback()  # a failed revision's transaction, if any
            connection.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
            connection.commit()


run()

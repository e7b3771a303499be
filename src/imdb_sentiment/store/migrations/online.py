"""Online-safe schema changes for the revisions: what a revision does on a large PostgreSQL
table that pods write throughout, and the same simply elsewhere (SQLite: one process's file)."""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op


def create_index(name: str, table: str, columns: Sequence[str]) -> None:
    """On PostgreSQL `CREATE INDEX CONCURRENTLY`, outside a transaction: inserts go on while it
    builds. A build that failed half-way leaves an invalid index of that name: dropped (also
    concurrently) and built again, so a retried migration finishes."""
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(name, table, list(columns))
        return
    with op.get_context().autocommit_block():
        invalid = (
            op.get_bind()
            .exec_driver_sql(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = %(name)s AND NOT i.indisvalid",
                {"name": name},
            )
            .first()
        )
        if invalid:
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
        op.create_index(name, table, list(columns), postgresql_concurrently=True,
                        if_not_exists=True)  # fmt: skip

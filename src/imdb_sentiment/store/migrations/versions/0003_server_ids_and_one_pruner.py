"""Prediction records keep the caller's X-Request-ID apart from the server's own id (the key);
`store_tasks` lets one replica per interval run retention. Additive only (expand): the previous
release writes and reads this schema unchanged.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as table:
        table.add_column(sa.Column("client_request_id", sa.String(128)))
    tasks = op.create_table(
        "store_tasks",
        sa.Column("task", sa.String(32), primary_key=True),
        sa.Column("last_run", sa.Float(precision=53), nullable=False),
    )
    op.bulk_insert(tasks, [{"task": "prune", "last_run": 0.0}])


def downgrade() -> None:
    op.drop_table("store_tasks")
    with op.batch_alter_table("predictions") as table:
        table.drop_column("client_request_id")

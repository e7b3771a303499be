"""The feedback store as it was before this store (one SQLite file per pod, FEEDBACK_DB).

Creates the two tables where they do not exist, so an existing feedback.db is adopted as is.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None
DOUBLE = sa.Float(precision=53)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "predictions" not in existing:
        op.create_table(
            "predictions",
            sa.Column("request_id", sa.String(128), primary_key=True),
            sa.Column("item", sa.Integer, primary_key=True),
            sa.Column("created", DOUBLE, nullable=False),
            sa.Column("model_version", sa.String(32)),
            sa.Column("probability", DOUBLE, nullable=False),
            sa.Column("label", sa.String(8), nullable=False),
            sa.Column("text", sa.Text),
        )
        op.create_index("predictions_created", "predictions", ["created"])
    if "feedback" not in existing:
        op.create_table(
            "feedback",
            sa.Column("request_id", sa.String(128), primary_key=True),
            sa.Column("item", sa.Integer, primary_key=True),
            sa.Column("created", DOUBLE, nullable=False),
            sa.Column("actual", sa.String(8), nullable=False),
            sa.Column("text_sha256", sa.String(64), unique=True),
        )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_index("predictions_created", table_name="predictions")
    op.drop_table("predictions")

"""Prediction records carry what drift compares (unknown-token share, tokens, characters);
feedback is indexed by time for exports over a window.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from imdb_sentiment.store.migrations import online

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as table:
        table.add_column(sa.Column("unknown_share", sa.Float(precision=53)))
        table.add_column(sa.Column("tokens", sa.Integer))
        table.add_column(sa.Column("text_chars", sa.Integer))
    online.create_index("feedback_created", "feedback", ["created"])


def downgrade() -> None:
    op.drop_index("feedback_created", table_name="feedback")
    with op.batch_alter_table("predictions") as table:
        table.drop_column("text_chars")
        table.drop_column("tokens")
        table.drop_column("unknown_share")

"""A prediction sampled for shadow scoring carries the candidate's answer beside production's:
the candidate's version, P(positive) and label (NULL when the request was not shadowed).
Nullable, without defaults: the previous release's inserts, which do not know these columns,
still succeed, and adding them is a change of the catalogue only (a lock held for moments). The
index is built concurrently (`online.create_index`): inserts go on meanwhile.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from imdb_sentiment.store.migrations import online

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as table:
        table.add_column(sa.Column("shadow_version", sa.String(32)))
        table.add_column(sa.Column("shadow_probability", sa.Float(precision=53)))
        table.add_column(sa.Column("shadow_label", sa.String(8)))
    online.create_index("predictions_shadow_version", "predictions", ["shadow_version"])


def downgrade() -> None:
    op.drop_index("predictions_shadow_version", table_name="predictions")
    with op.batch_alter_table("predictions") as table:
        table.drop_column("shadow_label")
        table.drop_column("shadow_probability")
        table.drop_column("shadow_version")

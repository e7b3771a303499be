"""The store's schema. Times are UNIX seconds in double precision (one type on every dialect);
probabilities are P(positive). A migration creates exactly these (tests compare).

`request_id` is always the id the server made (unguessable, unique); the caller's own
X-Request-ID is `client_request_id`, a correlation field and never a key.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()
DOUBLE = Float(precision=53)  # DOUBLE PRECISION on PostgreSQL; REAL (8 bytes) on SQLite

predictions = Table(
    "predictions",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("item", Integer, primary_key=True),
    Column("created", DOUBLE, nullable=False),
    Column("model_version", String(32)),
    Column("probability", DOUBLE, nullable=False),
    Column("label", String(8), nullable=False),
    Column("text", Text),
    Column("unknown_share", DOUBLE),
    Column("tokens", Integer),
    Column("text_chars", Integer),
    Column("client_request_id", String(128)),
    # The shadowed candidate's answer on the same text (serving.scoring), NULL if not shadowed.
    Column("shadow_version", String(32)),
    Column("shadow_probability", DOUBLE),
    Column("shadow_label", String(8)),
    Index("predictions_created", "created"),
    Index("predictions_shadow_version", "shadow_version"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("item", Integer, primary_key=True),
    Column("created", DOUBLE, nullable=False),
    Column("actual", String(8), nullable=False),
    Column("text_sha256", String(64), unique=True),
    Index("feedback_created", "created"),
)

# Work done once per interval across every replica (retention): the replica whose conditional
# UPDATE of `last_run` succeeds does it (store.database.PredictionStore.prune_if_due).
store_tasks = Table(
    "store_tasks",
    metadata,
    Column("task", String(32), primary_key=True),
    Column("last_run", DOUBLE, nullable=False),
)

"""The prediction store's settings, from the environment: read by the service (which writes
the store) and by the commands that read or migrate it (`drift`, `feedback export`,
`db upgrade`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from imdb_sentiment.core.model_settings import load_from_env


class StoreSettings(BaseSettings):
    """Where the prediction store is and how long it keeps unlabelled predictions."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # The prediction store (store/): every prediction record and every label, in one database
    # all replicas share (SQLAlchemy URL; production: postgresql+psycopg://…). Empty: no store,
    # feedback off. Unlabelled predictions are deleted after PREDICTION_RETENTION_HOURS.
    database_url: str = Field("sqlite:///.cache/predictions.db", validation_alias="DATABASE_URL")
    prediction_retention_hours: float = Field(
        168.0, gt=0.0, validation_alias="PREDICTION_RETENTION_HOURS"
    )
    # The spool (store.spool): every prediction record is kept here, on the pod's volume, before
    # its response is sent, and written to the database from here — at once, or when the
    # database is back. Past its size or age bound records are dropped and counted.
    prediction_spool_dir: str = Field(".cache/spool", validation_alias="PREDICTION_SPOOL_DIR")
    # The whole spool directory's bound, as the kubelet measures its emptyDir: every process's
    # file, WAL and shared memory (store.spool). Kubernetes sets it below the volume's sizeLimit.
    prediction_spool_max_mb: float = Field(256.0, gt=0, validation_alias="PREDICTION_SPOOL_MAX_MB")
    prediction_spool_max_age_hours: float = Field(
        168.0, gt=0, validation_alias="PREDICTION_SPOOL_MAX_AGE_HOURS"
    )
    # Retention runs once per interval across every replica (the first to claim it), in batches,
    # each under its own statement timeout (store.retention).
    prediction_prune_interval_s: float = Field(
        300.0, gt=0, validation_alias="PREDICTION_PRUNE_INTERVAL_S"
    )
    database_retention_statement_timeout_s: float = Field(
        60.0, gt=0, le=3600, validation_alias="DATABASE_RETENTION_STATEMENT_TIMEOUT_S"
    )
    # The promotion gate's evidence query (a GROUP BY over a week of shadowed predictions) on
    # the read-only role: its own bound; past it the gate fails, it never decides without it.
    database_evidence_statement_timeout_s: float = Field(
        120.0, gt=0, le=3600, validation_alias="DATABASE_EVIDENCE_STATEMENT_TIMEOUT_S"
    )
    # A feedback request holds its worker at most this long waiting for the database (503 then).
    feedback_budget_s: float = Field(5.0, gt=0, le=60, validation_alias="FEEDBACK_BUDGET_S")
    # auto: the server upgrades the schema at start (the embedded SQLite store of `make run`);
    # off: only `imdb-sentiment db upgrade` does, once per release (the Kubernetes Job, compose's
    # migrate service). Either way a server starts on a schema it can use (store.schema) and
    # reports any other as not ready.
    database_migrate: Literal["auto", "off"] = Field("auto", validation_alias="DATABASE_MIGRATE")
    # Bounded waits on every connection (store.engine): opening one, a statement (server side),
    # a lock a statement waits for. SQLite waits up to the statement timeout for its file lock.
    database_connect_timeout_s: int = Field(
        3, ge=1, le=60, validation_alias="DATABASE_CONNECT_TIMEOUT_S"
    )
    database_statement_timeout_s: float = Field(
        2.0, gt=0, le=600, validation_alias="DATABASE_STATEMENT_TIMEOUT_S"
    )
    database_lock_timeout_s: float = Field(
        1.0, gt=0, le=600, validation_alias="DATABASE_LOCK_TIMEOUT_S"
    )
    # Migrations may run long, but never queue every insert behind a DDL lock for long: an ALTER
    # that waits longer than this for its lock fails (and the release step retries).
    database_migration_statement_timeout_s: float = Field(
        600.0, gt=0, validation_alias="DATABASE_MIGRATION_STATEMENT_TIMEOUT_S"
    )
    database_migration_lock_timeout_s: float = Field(
        5.0, gt=0, validation_alias="DATABASE_MIGRATION_LOCK_TIMEOUT_S"
    )

    def evidence_timeouts(self) -> Timeouts:
        return Timeouts(connect_s=self.database_connect_timeout_s,
                        statement_s=self.database_evidence_statement_timeout_s,
                        lock_s=self.database_lock_timeout_s)  # fmt: skip

    def timeouts(self, migration: bool = False) -> Timeouts:
        return Timeouts(
            connect_s=self.database_connect_timeout_s,
            statement_s=self.database_migration_statement_timeout_s
            if migration
            else self.database_statement_timeout_s,
            lock_s=self.database_migration_lock_timeout_s
            if migration
            else self.database_lock_timeout_s,
        )


@dataclass(frozen=True)
class Timeouts:
    """How long one connection may wait, at most, for each thing."""

    connect_s: int = 3
    statement_s: float = 2.0
    lock_s: float = 1.0


def load_store_settings(**overrides: Any) -> StoreSettings:
    return load_from_env(StoreSettings, **overrides)

"""The prediction store's settings, from the environment: read by the service (which writes
the store) and by the commands that read or migrate it (`drift`, `feedback export`,
`db upgrade`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from imdb_sentiment.settings import load_from_env


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
    # Records waiting for the writer, per process; past it they are dropped and counted.
    prediction_queue_max: int = Field(10_000, ge=1, validation_alias="PREDICTION_QUEUE_MAX")
    # auto: the gunicorn master upgrades the schema at start (under a lock on PostgreSQL);
    # off: only `imdb-sentiment db upgrade` does (e.g. a migration job before the rollout).
    database_migrate: Literal["auto", "off"] = Field("auto", validation_alias="DATABASE_MIGRATE")


def load_store_settings(**overrides: Any) -> StoreSettings:
    return load_from_env(StoreSettings, **overrides)

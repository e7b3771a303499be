"""Runtime settings every area shares: the MLflow registry and the local model cache, from the
environment. The service composes these with its own (`serving.service_settings`).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from imdb_sentiment.core.config import MODEL_NAME, MODEL_URI, PRODUCTION_ALIAS, one_line
from imdb_sentiment.core.errors import ConfigError


class ModelSettings(BaseSettings):
    """Where models are registered and cached: what every area that loads or logs a model
    reads from the environment (never from params.yaml)."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    mlflow_tracking_uri: str = Field("sqlite:///mlflow.db", validation_alias="MLFLOW_TRACKING_URI")
    model_name: str = Field(MODEL_NAME, validation_alias="MODEL_NAME")
    model_alias: str = Field(PRODUCTION_ALIAS, validation_alias="MODEL_ALIAS")
    # A release pins the exact version its image bakes: served as is, the alias not followed.
    # Unset (or empty): follow MODEL_ALIAS (local, compose, dev).
    model_version: str | None = Field(None, pattern=r"^\d*$", validation_alias="MODEL_VERSION")
    # Read-only model cache baked into the image (fetch-model at build time); copied into the
    # writable MODEL_CACHE_DIR at start, so a pod needs no registry to serve its version.
    model_baked_dir: str | None = Field(None, validation_alias="MODEL_BAKED_DIR")
    # One setting for all three: models:/<name>@<alias> follows an alias, models:/<name>/<n>
    # pins a version. Overrides MODEL_NAME, MODEL_ALIAS and MODEL_VERSION when set.
    model_uri: str | None = Field(
        None,
        pattern=MODEL_URI.pattern,
        validation_alias="MODEL_URI",
    )
    experiment_name: str = Field("imdb-sentiment", validation_alias="MLFLOW_EXPERIMENT_NAME")
    model_cache_dir: str = Field(".cache/model", validation_alias="MODEL_CACHE_DIR")

    @field_validator("model_version", "model_baked_dir", "model_uri", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="before")
    @classmethod
    def _from_uri(cls, data: Any) -> Any:
        """MODEL_URI sets name and alias or version (keys arrive by field or env name)."""
        uri = data.get("MODEL_URI", data.get("model_uri")) if isinstance(data, dict) else None
        match = MODEL_URI.match(uri) if isinstance(uri, str) else None
        if match is None:
            return data  # unset, or the field's pattern rejects it with a clear message
        replaced = {"MODEL_NAME", "MODEL_ALIAS", "MODEL_VERSION"}
        data = {k: v for k, v in data.items() if k.upper() not in replaced}
        data["model_name"] = match["name"]
        data["model_version"] = match["version"]
        if match["alias"]:
            data["model_alias"] = match["alias"]
        return data


S = TypeVar("S", bound=BaseSettings)


def load_from_env(kind: type[S], **overrides: Any) -> S:
    """Settings of `kind` from the environment, with explicit overrides (tests, CLI flags); a
    bad value is one `ConfigError` line, as for params.yaml."""
    try:
        return kind(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {one_line(exc)}") from exc


def load_model_settings(**overrides: Any) -> ModelSettings:
    """Read the registry and cache settings from the environment, with explicit overrides."""
    return load_from_env(ModelSettings, **overrides)

"""The service's settings, composed of three parts each read from the environment: the
registry and cache's (`core.model_settings`), the prediction store's (`store.store_settings`)
and the service's own (server, limits, logs, credentials: `ServiceSettings`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from imdb_sentiment.core.config import MODEL_URI, one_line
from imdb_sentiment.core.errors import ConfigError
from imdb_sentiment.core.model_settings import ModelSettings, load_from_env
from imdb_sentiment.store.store_settings import StoreSettings


class ServiceSettings(BaseSettings):
    """What the service alone reads from the environment (never from params.yaml)."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str = Field("0.0.0.0", validation_alias="HOST")
    port: int = Field(5005, ge=1, le=65535, validation_alias="PORT")
    workers: int = Field(2, ge=1, le=64, validation_alias="WORKERS")
    # sync: one request at a time per worker, no keep-alive, so an idle worker takes the next
    # connection and load spreads evenly (measured against gthread's keep-alive, same run:
    # 1,037 against 988 req/s, p99 14 against 26 ms; docs/benchmarks.md). Put a proxy in front
    # for slow clients, as gunicorn recommends. THREADS applies to gthread only.
    worker_class: Literal["sync", "gthread"] = Field("sync", validation_alias="WORKER_CLASS")
    threads: int = Field(4, ge=1, le=64, validation_alias="THREADS")
    timeout: int = Field(30, ge=1, validation_alias="TIMEOUT")
    reload_interval: float = Field(30.0, ge=0.0, validation_alias="MODEL_RELOAD_INTERVAL")
    # inline: each process polls the registry itself. sidecar: one sync process per server
    # (`serving.server.Server` starts it) fills MODEL_CACHE_DIR and workers follow the cache.
    model_sync: Literal["inline", "sidecar"] = Field("inline", validation_alias="MODEL_SYNC")
    instance_cost_per_hour: float = Field(0.0416, ge=0.0, validation_alias="INSTANCE_COST_PER_HOUR")
    # The V2 gRPC inference protocol (serving.grpc) on its own port, from processes beside the
    # workers; 0: off (make serve). The image and the KServe runtime turn it on (8081).
    grpc_port: int = Field(0, ge=0, le=65535, validation_alias="GRPC_PORT")
    # Its processes share the port (SO_REUSEPORT: the kernel spreads connections): one process's
    # GIL caps what gRPC scores, as one worker's caps HTTP.
    grpc_workers: int = Field(2, ge=1, le=64, validation_alias="GRPC_WORKERS")
    grpc_threads: int = Field(8, ge=1, le=256, validation_alias="GRPC_THREADS")
    # Shadow scoring (serving.scoring): a sampled share of requests is also scored by the
    # candidate, recorded beside production's answer, never returned. Unset URI: the model's
    # `staging` alias whenever it names another version than production. SHADOW_SAMPLE=0: off.
    shadow_model_uri: str | None = Field(
        None, pattern=MODEL_URI.pattern, validation_alias="SHADOW_MODEL_URI"
    )
    shadow_sample: float = Field(0.1, ge=0.0, le=1.0, validation_alias="SHADOW_SAMPLE")
    # A request is shadowed only while the candidate's measured cost for it fits this (0: any).
    shadow_budget_ms: float = Field(50.0, ge=0.0, validation_alias="SHADOW_BUDGET_MS")
    max_text_chars: int = Field(50_000, ge=1, validation_alias="MAX_TEXT_CHARS")
    max_batch_size: int = Field(256, ge=1, validation_alias="MAX_BATCH_SIZE")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, validation_alias="MAX_BODY_BYTES")
    explain_top_k: int = Field(8, ge=1, le=50, validation_alias="EXPLAIN_TOP_K")
    # Logs: JSON lines (one object per line, with the request id) or plain text for a terminal.
    log_format: Literal["json", "text"] = Field("json", validation_alias="LOG_FORMAT")
    access_log: bool = Field(True, validation_alias="ACCESS_LOG")
    # Prediction log (store.records): a sampled record per prediction, written off the
    # request path. The review's text only if allowed (privacy by default).
    prediction_log_rate: float = Field(0.01, ge=0.0, le=1.0, validation_alias="PREDICTION_LOG_RATE")
    prediction_log_text: bool = Field(False, validation_alias="PREDICTION_LOG_TEXT")
    # Unset: records go to stdout among the other JSON lines. Set: rotated JSONL files there,
    # one per process (predictions-<pid>.jsonl).
    prediction_log_dir: str | None = Field(None, validation_alias="PREDICTION_LOG_DIR")
    prediction_log_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, validation_alias="PREDICTION_LOG_MAX_BYTES"
    )
    prediction_log_backups: int = Field(5, ge=0, validation_alias="PREDICTION_LOG_BACKUPS")
    # Bearer tokens (serving.auth): a file of SHA-256 digests, one per line (a mounted
    # Secret). POST /api/v1/feedback needs a token; API_TOKENS_FOR=all, every prediction route
    # too. Unset: the write route refuses everyone (403) unless ALLOW_ANONYMOUS_WRITES=true,
    # which only a laptop should say (make run, make serve, compose).
    api_tokens_file: str | None = Field(None, validation_alias="API_TOKENS_FILE")
    allow_anonymous_writes: bool = Field(False, validation_alias="ALLOW_ANONYMOUS_WRITES")
    api_tokens_for: Literal["feedback", "all"] = Field(
        "feedback", validation_alias="API_TOKENS_FOR"
    )

    @field_validator("prediction_log_dir", "api_tokens_file", "shadow_model_uri", mode="before")
    @classmethod
    def _empty_paths_are_unset(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _text_fits_body(self) -> ServiceSettings:
        if self.max_text_chars > self.max_body_bytes:
            raise ValueError("MAX_TEXT_CHARS cannot exceed MAX_BODY_BYTES")
        return self

    @property
    def spool_processes(self) -> int:
        """The processes that write the pod's spool (each a file, sharing its bound): gunicorn's
        workers and the gRPC fronts; one process without gunicorn (MODEL_SYNC=inline)."""
        if self.model_sync == "inline":
            return 1
        return self.workers + (self.grpc_workers if self.grpc_port else 0)

    @property
    def drain_s(self) -> float:
        """How long a stopping process writes its spool out: gunicorn's graceful timeout
        (TIMEOUT, which the pod's terminationGracePeriodSeconds covers) less a fifth for the
        requests it finishes first."""
        return max(1.0, self.timeout * 0.8)


class Settings(BaseModel):
    """Runtime settings of the service: its parts, and what holds across them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelSettings
    store: StoreSettings
    service: ServiceSettings

    @model_validator(mode="after")
    def _shadow_of_this_model(self) -> Settings:
        match = MODEL_URI.match(self.service.shadow_model_uri or "")
        if match is not None and match["name"] != self.model.model_name:
            raise ValueError(f"SHADOW_MODEL_URI must name a version of {self.model.model_name!r}")
        return self


_PARTS: dict[str, type[BaseSettings]] = {
    "model": ModelSettings, "store": StoreSettings, "service": ServiceSettings
}  # fmt: skip


def _owner(key: str) -> str:
    """The part a setting belongs to, by field or environment name (any case)."""
    for part, kind in _PARTS.items():
        for name, field in kind.model_fields.items():
            if key.lower() in (name, str(field.validation_alias).lower()):
                return part
    raise ConfigError(f"invalid settings: no setting {key!r}")


def load_settings(**overrides: Any) -> Settings:
    """Read each part from the environment, with explicit overrides by field or environment
    name (tests, CLI flags); a bad value is one `ConfigError` line."""
    given: dict[str, dict[str, Any]] = {part: {} for part in _PARTS}
    for key, value in overrides.items():
        given[_owner(key)][key] = value
    parts = {part: load_from_env(kind, **given[part]) for part, kind in _PARTS.items()}
    try:
        return Settings(**parts)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {one_line(exc)}") from exc

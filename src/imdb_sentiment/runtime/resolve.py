"""Which model a batch job scores with: a `models:/` URI resolved once to one registered version,
whose compiled scorer is fetched into the local model cache (the same cache the service uses).

Registered versions carry their compiled scorer (`registry._log_scorer`); versions registered
before that are compiled here once and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imdb_sentiment.core.config import MODEL_URI
from imdb_sentiment.core.errors import PipelineError, first_line
from imdb_sentiment.core.model_settings import ModelSettings
from imdb_sentiment.runtime.cache import ModelCache
from imdb_sentiment.runtime.scorer_files import META_FILE


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str | None
    version: str | None

    @property
    def uri(self) -> str:
        tail = f"@{self.alias}" if self.alias else f"/{self.version}"
        return f"models:/{self.name}{tail}"


@dataclass(frozen=True)
class ResolvedModel:
    ref: ModelRef
    version: str
    scorer_dir: Path  # a saved FastScorer (runtime.scorer)

    def describe(self) -> str:
        return f"{self.ref.name} version {self.version} ({self.ref.uri})"


def parse_model_uri(uri: str) -> ModelRef:
    match = MODEL_URI.match(uri)
    if match is None:
        raise PipelineError(
            f"--model must be models:/<name>@<alias> or models:/<name>/<version>, got {uri!r}"
        )
    return ModelRef(match["name"], match["alias"], match["version"])


def resolve_model(uri: str, settings: ModelSettings) -> ResolvedModel:
    """Resolve the alias (once), download the version and its compiled scorer into the cache."""
    from imdb_sentiment.core.tracking import configure
    from imdb_sentiment.runtime.sync import RegistrySync, RegistryVersion, quiet_http_defaults

    ref = parse_model_uri(uri)
    quiet_http_defaults()
    configure(settings)
    cache = ModelCache(settings.model_cache_dir, ref.name)
    target = {"model_name": ref.name, "model_alias": ref.alias or settings.model_alias}
    sync = RegistrySync(settings.model_copy(update=target), cache)
    try:
        version = ref.version or sync.alias_version().version
        sync.download(RegistryVersion(version, None))
        sync.save_scorer(RegistryVersion(version, None))
    except PipelineError:
        raise
    except Exception as exc:  # registry errors come in many types; all are one line here
        raise PipelineError(f"cannot load {uri}: {first_line(exc)}") from exc
    scorer = cache.scorer_dir(version)
    if not (scorer / META_FILE).exists():
        raise PipelineError(
            f"{ref.name} version {version} cannot be compiled for batch scoring (character "
            "n-grams?): use mlflow.pyfunc.spark_udf or the API instead"
        )
    return ResolvedModel(ref, version, scorer)

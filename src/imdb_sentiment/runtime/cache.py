"""The local model cache: what workers serve from. Workers load the compiled scorer (numpy
only); MLflow and scikit-learn are imported only by `compile_model`, for models whose scorer
cannot be saved (character n-grams) and by the registry sync.

Layout under `MODEL_CACHE_DIR/<model name>/`:

    v<N>/            the registered MLflow model, as downloaded (MLmodel, model.skops, …)
    v<N>/scorer/     the same model compiled for serving (runtime.scorer.FastScorer.save)
    v<N>/quality/    its test-split metrics as evaluated by the pipeline (registry._log_quality)
    current.json     the pointer: which version to serve, whether it came from the registry or
                     the cache (registry unreachable), and why nothing is served if so
    shadow.json      the same for the candidate scored in the shadow (SHADOW_MODEL_URI); no
                     version when nothing is shadowed (no candidate, or it is production)

Only the registry sync (`serving.server model-sync`) writes here; the pointer is replaced
atomically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from imdb_sentiment.core.atomic import atomic_path
from imdb_sentiment.core.errors import PipelineError
from imdb_sentiment.core.labels import carried_threshold
from imdb_sentiment.runtime.scorer import FastScorer
from imdb_sentiment.runtime.scorer_files import (
    META_FILE,
    SCORER_DIR,
    THRESHOLD_METADATA,
    load_scorer,
)

QUALITY_DIR = "quality"
QUALITY_FILE = "metrics.json"
# What the dashboard shows of a version's evaluation (test split).
QUALITY_METRICS = ("accuracy", "f1", "roc_auc", "ece")

# registry: the alias's version, fetched; cache: the registry was unreachable, the last cached
# version is served; image: the pinned version baked into the image; injected: handed in (tests).
Source = Literal["registry", "cache", "image", "injected"]
POINTER = "current.json"
SHADOW_POINTER = "shadow.json"


@dataclass(frozen=True)
class Pointer:
    name: str
    version: str | None  # None: nothing to serve, `reason` says why
    run_id: str | None
    source: Source
    reason: str = ""


class ModelCache:
    def __init__(self, root: str | Path, name: str, pointer: str = POINTER) -> None:
        self.dir = Path(root) / name
        self.pointer_path = self.dir / pointer

    def with_pointer(self, pointer: str) -> ModelCache:
        """The same versions, another pointer (the shadowed candidate's)."""
        return ModelCache(self.dir.parent, self.dir.name, pointer)

    def version_dir(self, version: str) -> Path:
        return self.dir / f"v{version}"

    def scorer_dir(self, version: str) -> Path:
        return self.version_dir(version) / SCORER_DIR

    def quality(self, version: str) -> dict[str, float]:
        """The version's evaluated test metrics; empty for versions registered without them."""
        path = self.version_dir(version) / QUALITY_DIR / QUALITY_FILE
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: float(v) for k, v in raw.items() if k in QUALITY_METRICS}

    def read_pointer(self) -> Pointer | None:
        try:
            raw = json.loads(self.pointer_path.read_text())
        except FileNotFoundError:
            return None
        version = raw.get("version")
        return Pointer(
            name=str(raw["name"]),
            version=None if version is None else str(version),
            run_id=raw.get("run_id"),
            source=raw.get("source", "cache"),
            reason=str(raw.get("reason", "")),
        )

    def write_pointer(self, pointer: Pointer) -> None:
        with atomic_path(self.pointer_path) as tmp:  # readers see the old or the new, never half
            tmp.write_text(json.dumps(asdict(pointer)))

    def load_scorer(self, version: str) -> FastScorer:
        """The compiled scorer if the sync saved one; else compile the cached MLflow model here
        (configurations the compiler cannot save, e.g. character n-grams: slower, more memory)."""
        compiled = self.scorer_dir(version)
        if (compiled / META_FILE).exists():
            return load_scorer(compiled)
        return self.compile_model(version)

    def compile_model(self, version: str) -> FastScorer:
        """Compile the downloaded MLflow model of `version` (needs MLflow and scikit-learn)."""
        try:
            import mlflow.sklearn
            from mlflow.models import Model

            from imdb_sentiment.model.legacy import accept_old_module_paths
            from imdb_sentiment.runtime.compile import compile_pipeline
        except ImportError as exc:  # the serving image: no scikit-learn (pyproject.toml)
            raise PipelineError(
                f"version {version} carries no compiled scorer, and compiling one needs the "
                f"pipeline's dependencies ({exc.name} is not installed here): serve it from an "
                "installation with the pipeline extra, or register it with this release"
            ) from exc

        accept_old_module_paths()  # versions registered before the package's rooms
        directory = str(self.version_dir(version))
        metadata = Model.load(directory).metadata or {}
        threshold = carried_threshold(metadata.get(THRESHOLD_METADATA))
        return compile_pipeline(mlflow.sklearn.load_model(directory), threshold)

"""Which model is served: load from the registry alias, fall back to a local cache, hot-reload.

The current model is one immutable `LoadedModel` behind a single attribute. A request reads it
once and keeps that reference, so a swap (a plain attribute assignment, atomic in CPython)
never disturbs a request in flight.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from sklearn.pipeline import Pipeline

from imdb_sentiment.config import Settings
from imdb_sentiment.serving.metrics import Metrics
from imdb_sentiment.serving.scorer import FastScorer

log = logging.getLogger(__name__)
Source = Literal["registry", "cache", "injected"]


@dataclass(frozen=True)
class LoadedModel:
    # Only the compiled scorer is kept: holding the sklearn pipeline too would keep its
    # half-million-entry vocabulary dict alive in every worker for nothing.
    scorer: FastScorer
    name: str
    version: str
    run_id: str | None
    source: Source
    loaded_at: float


@dataclass(frozen=True)
class RegistryVersion:
    version: str
    run_id: str | None


def _warm(scorer: FastScorer) -> FastScorer:
    """Score once before serving: the lemmatizer loads its tables on first use (~0.2 s),
    which would otherwise land on the first user's request."""
    scorer.score("A warm-up review: the acting was great, the plot wasn't.", explain=1)
    return scorer


class ModelStore:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.cache = Path(settings.model_cache_dir) / settings.model_name
        self._current: LoadedModel | None = None
        self.reason = "model not loaded yet"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one load at a time; readers never take it

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def inject(self, pipeline: Pipeline, version: str = "injected") -> None:
        """Serve a model handed in directly (tests, embedding); no registry, no polling."""
        self._swap(
            LoadedModel(
                _warm(FastScorer(pipeline)),
                self.settings.model_name,
                version,
                None,
                "injected",
                time.time(),
            )
        )

    # --- registry -----------------------------------------------------------------------
    def _alias_version(self) -> RegistryVersion:
        from mlflow import MlflowClient

        client = MlflowClient(self.settings.mlflow_tracking_uri, self.settings.mlflow_tracking_uri)
        found = client.get_model_version_by_alias(
            self.settings.model_name, self.settings.model_alias
        )
        return RegistryVersion(str(found.version), found.run_id)

    def _download(self, version: RegistryVersion) -> Path:
        """Copy the model version into the cache (once); return its directory."""
        import mlflow

        target = self.cache / f"v{version.version}"
        if (target / "MLmodel").exists():
            return target
        self.cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.cache, prefix=".download-"))
        try:
            uri = f"models:/{self.settings.model_name}/{version.version}"
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(staging))
            os.replace(local, target) if not target.exists() else None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _write_pointer(self, version: RegistryVersion) -> None:
        pointer = {
            "name": self.settings.model_name,
            "version": version.version,
            "run_id": version.run_id,
        }
        fd, tmp = tempfile.mkstemp(dir=self.cache, prefix=".current.")
        with os.fdopen(fd, "w") as handle:
            json.dump(pointer, handle)
        os.replace(tmp, self.cache / "current.json")

    def _load_dir(self, path: Path, version: RegistryVersion, source: Source) -> LoadedModel:
        import mlflow.sklearn

        scorer = _warm(FastScorer(mlflow.sklearn.load_model(str(path))))
        return LoadedModel(
            scorer,
            self.settings.model_name,
            version.version,
            version.run_id,
            source,
            time.time(),
        )

    # --- lifecycle ----------------------------------------------------------------------
    def load_initial(self) -> None:
        """Registry first; if it is unreachable or empty, the last cached copy; else not ready."""
        try:
            self.refresh()
            if self._current is not None:
                return
        except Exception as exc:  # the registry's failure modes are many; all mean "use cache"
            log.warning("registry unavailable (%s); trying the local model cache", exc)
            self.reason = f"registry unavailable: {exc}"
        self._load_cached()

    def _load_cached(self) -> None:
        pointer = self.cache / "current.json"
        if not pointer.exists():
            self.reason = f"{self.reason}; no cached model in {self.cache}"
            return
        meta = json.loads(pointer.read_text())
        version = RegistryVersion(str(meta["version"]), meta.get("run_id"))
        try:
            loaded = self._load_dir(self.cache / f"v{version.version}", version, "cache")
        except Exception as exc:
            self.metrics.reloads.labels(result="failure").inc()
            self.reason = f"{self.reason}; cached model unusable: {exc}"
            return
        log.warning("serving cached model version %s (registry unreachable)", version.version)
        self.metrics.reloads.labels(result="success").inc()
        self._swap(loaded)

    def refresh(self) -> bool:
        """Load the alias's version if it differs from the one served. True if swapped."""
        with self._lock:
            wanted = self._alias_version()
            current = self._current
            if (
                current is not None
                and current.version == wanted.version
                and current.source != "cache"
            ):
                return False
            if current is not None and current.version == wanted.version:
                self._swap(replace(current, source="registry"))
                return False
            try:
                loaded = self._load_dir(self._download(wanted), wanted, "registry")
            except Exception:
                self.metrics.reloads.labels(result="failure").inc()
                raise
            self._write_pointer(wanted)
            self.metrics.reloads.labels(result="success").inc()
            self._swap(loaded)
            return True

    def _swap(self, loaded: LoadedModel) -> None:
        old = self._current
        self._current = loaded  # the atomic swap
        if old is not None and old.version != loaded.version:
            self.metrics.model_info.labels(name=old.name, version=old.version).set(0)
        self.metrics.model_info.labels(name=loaded.name, version=loaded.version).set(1)
        self.reason = ""
        log.info("serving %s version %s (from %s)", loaded.name, loaded.version, loaded.source)

    def start_polling(self) -> None:
        if self.settings.reload_interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, name="model-reload", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.reload_interval):
            try:
                self.refresh()
            except Exception as exc:  # keep serving the old model; the metric tells
                log.warning(
                    "model reload failed, keeping version %s: %s",
                    self._current.version if self._current else None,
                    exc,
                )

    def stop(self) -> None:
        self._stop.set()

"""Which model is served: follow the model cache's pointer, hot-swap when it moves.

The current model is one immutable `LoadedModel` behind a single attribute. A request reads it
once and keeps that reference, so a swap (a plain attribute assignment, atomic in CPython)
never disturbs a request in flight.

Who moves the pointer (`MODEL_SYNC`): with `sidecar` (gunicorn) the separate registry
sync process does; with `inline` this store runs the registry sync itself before each look at
the pointer. Either way a worker only ever loads a compiled scorer from the cache.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from imdb_sentiment.runtime.cache import POINTER, SHADOW_POINTER, ModelCache, Pointer, Source
from imdb_sentiment.runtime.scorer import FastScorer
from imdb_sentiment.serving.metrics import Metrics
from imdb_sentiment.serving.service_settings import Settings

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from imdb_sentiment.runtime.sync import RegistrySync, ShadowSync

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    # Only the compiled scorer is kept, never the sklearn pipeline with its vocabulary dict.
    scorer: FastScorer
    name: str
    version: str
    run_id: str | None
    source: Source
    loaded_at: float
    quality: dict[str, float] = field(default_factory=dict)  # evaluated test metrics


def _warm(scorer: FastScorer) -> FastScorer:
    """Score once before serving: lazy imports (e.g. the lemmatizer's tables, ~0.2 s) would
    otherwise land on the first user's request."""
    review = "A warm-up review: the acting was great, the plot wasn't."
    scorer.score(review, explain=1)
    scorer.score_batch([review, review])  # and the compiled kernel's tables, if it has one
    return scorer


class LiveModel:
    """The served model; with `shadow`, the candidate scored in the shadow instead: same cache,
    compile and hot reload, its own pointer (SHADOW_POINTER), none of production's metrics, and
    nothing served once its pointer names no version (the candidate was promoted or withdrawn)."""

    def __init__(self, settings: Settings, metrics: Metrics, shadow: bool = False) -> None:
        self.settings = settings
        self.metrics = metrics
        self.shadow = shadow
        pointer = SHADOW_POINTER if shadow else POINTER
        self.cache = ModelCache(settings.model.model_cache_dir, settings.model.model_name, pointer)
        # Read by every request as a plain attribute (no call); written only by this class.
        self.current: LoadedModel | None = None
        self.reason = "model not loaded yet"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one load at a time; readers never take it
        self._sync: RegistrySync | ShadowSync | None = None

    @property
    def public_reason(self) -> str:
        """Why nothing is served, for clients: no registry URL, path or exception text (those
        are in `reason`, which goes to the log)."""
        if self.current is not None:
            return ""
        return "no model is loaded yet; retry shortly"

    @property
    def sync(self) -> RegistrySync | ShadowSync:
        """The in-process registry sync (`inline` mode), created on first use."""
        if self._sync is None:
            from imdb_sentiment.runtime.sync import RegistrySync, ShadowSync

            production = self.cache.with_pointer(POINTER)
            uri = self.settings.service.shadow_model_uri
            self._sync = (ShadowSync(self.settings.model, production, uri) if self.shadow
                          else RegistrySync(self.settings.model, self.cache))  # fmt: skip
        return self._sync

    def inject(
        self,
        model: Pipeline | FastScorer,
        version: str = "injected",
        quality: dict[str, float] | None = None,
    ) -> None:
        """Serve a model handed in directly (tests, embedding); no registry, no polling. A
        compiled scorer decides at its own threshold, a bare pipeline carries none."""
        from imdb_sentiment.core.labels import carried_threshold
        from imdb_sentiment.runtime.compile import compile_pipeline

        compiled = (model if isinstance(model, FastScorer)
                    else compile_pipeline(model, carried_threshold(None)))  # fmt: skip
        scorer = _warm(compiled)
        name = self.settings.model.model_name
        loaded = LoadedModel(scorer, name, version, None, "injected", time.time(), quality or {})
        self._swap(loaded)

    # --- lifecycle ----------------------------------------------------------------------
    def load_initial(self) -> None:
        """Registry (inline mode) or the sync's pointer; a cached copy if the registry is down;
        else not ready, with the reason. Never raises: the process runs either way."""
        if self.settings.service.model_sync == "inline":
            try:
                self.sync.sync()
            except Exception as exc:  # the registry's failure modes are many; all mean cache
                log.warning("registry unavailable (%s); serving the model cache if any", exc)
        try:
            self.follow()
        except Exception as exc:
            log.warning("no usable model: %s", exc)

    def refresh(self) -> bool:
        """Inline mode: sync the registry into the cache first. Then follow the pointer."""
        if self.settings.service.model_sync == "inline":
            try:
                self.sync.sync()
            except Exception:
                self.metrics.reloads.labels(result="failure").inc()
                raise
        return self.follow()

    def follow(self) -> bool:
        """Serve what the cache's pointer names, loading it if it changed. True if swapped."""
        with self._lock:
            pointer = self.cache.read_pointer()
            if (
                self.shadow
                and self.current is not None
                and (pointer is None or pointer.version is None)
            ):
                gone = self.current
                log.info("no longer shadowing version %s", gone.version)
                self.metrics.shadow_model_info.labels(name=gone.name, version=gone.version).set(0)
                self.current = None
                return True
            if pointer is None or pointer.version is None:
                if self.shadow:
                    return False  # nothing to shadow is no failure
                if self.current is None:
                    reason = (
                        pointer.reason
                        if pointer is not None
                        else f"no model synced yet (no {self.cache.pointer_path})"
                    )
                    if reason != self.reason:
                        log.warning("no model to serve: %s", reason)
                        self.reason = reason
                    if pointer is not None:  # the sync tried and found nothing to serve
                        self.metrics.reloads.labels(result="failure").inc()
                return False
            current = self.current
            if current is not None and current.version == pointer.version:
                if current.source != pointer.source:
                    self._swap(replace(current, source=pointer.source))
                return False
            try:
                loaded = self._load(pointer)
            except Exception as exc:
                self._count_reload("failure")
                if self.current is None:
                    self.reason = f"cached model version {pointer.version} unusable: {exc}"
                raise
            self._count_reload("success")
            self._swap(loaded)
            return True

    def _count_reload(self, result: str) -> None:
        if not self.shadow:  # production's reloads only: the alerts read them
            self.metrics.reloads.labels(result=result).inc()

    def _load(self, pointer: Pointer) -> LoadedModel:
        assert pointer.version is not None
        scorer = _warm(self.cache.load_scorer(pointer.version))
        if pointer.source == "cache":
            log.warning("serving cached model version %s: %s", pointer.version, pointer.reason)
        quality = self.cache.quality(pointer.version)
        return LoadedModel(
            scorer,
            pointer.name,
            pointer.version,
            pointer.run_id,
            pointer.source,
            time.time(),
            quality,
        )

    def _swap(self, loaded: LoadedModel) -> None:
        old = self.current
        self.current = loaded  # the atomic swap
        info = self.metrics.shadow_model_info if self.shadow else self.metrics.model_info
        if old is not None and old.version != loaded.version:
            info.labels(name=old.name, version=old.version).set(0)
        info.labels(name=loaded.name, version=loaded.version).set(1)
        if self.shadow:
            log.info("shadowing %s version %s", loaded.name, loaded.version)
            return
        if old is not None and old.version != loaded.version:
            for metric in old.quality:
                self.metrics.evaluated.labels(old.name, old.version, metric).set(0)
        for metric, value in loaded.quality.items():
            self.metrics.evaluated.labels(loaded.name, loaded.version, metric).set(value)
        # Every outcome exists from the start at 0: increase() over a window then counts the
        # first labels too (a series born at 1 would show no increase).
        for outcome in ("tp", "tn", "fp", "fn"):
            self.metrics.feedback.labels(loaded.name, loaded.version, outcome)
        self.reason = ""
        # The model's objects live as long as the process: move them out of the cyclic GC's
        # reach, whose full passes over them were a visible share of p99 latency.
        gc.collect()
        gc.freeze()
        log.info("serving %s version %s (from %s)", loaded.name, loaded.version, loaded.source)

    def start_polling(self) -> None:
        if self.settings.service.reload_interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, name="model-reload", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.service.reload_interval):
            try:
                self.refresh()
            except Exception as exc:  # keep serving the old model; the metric tells
                log.warning(
                    "model reload failed, keeping version %s: %s",
                    self.current.version if self.current else None,
                    exc,
                )

    def stop(self) -> None:
        self._stop.set()

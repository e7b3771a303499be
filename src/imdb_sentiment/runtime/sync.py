"""Registry sync: follow `models:/<name>@<alias>`, download each new version into the model
cache, compile it, then move the cache's pointer.

The service runs it in its sync sidecar (`serving.server model-sync`) or, without gunicorn
(`MODEL_SYNC=inline`: tests, a bare `create_app`), in-process; batch scoring and drift checks
through `runtime.resolve`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from imdb_sentiment.core.atomic import atomic_dir, publish_dir
from imdb_sentiment.core.config import MODEL_URI, STAGING_ALIAS
from imdb_sentiment.core.errors import first_line
from imdb_sentiment.core.model_settings import ModelSettings
from imdb_sentiment.runtime.cache import SHADOW_POINTER, ModelCache, Pointer
from imdb_sentiment.runtime.scorer_files import save_scorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistryVersion:
    version: str
    run_id: str | None


def quiet_http_defaults() -> None:
    """A dead tracking server must not stall startup for minutes of HTTP retries."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class RegistryUnavailableError(RuntimeError):
    pass


def require_registry(uri: str) -> None:
    """A reader never creates a registry: an SQLite one that does not exist (the default
    `sqlite:///mlflow.db` in a container with no MLFLOW_TRACKING_URI) is absent at once, not
    after MLflow's minute of retries trying to create it on a read-only disk."""
    if not uri.startswith("sqlite:///"):
        return
    database = uri.removeprefix("sqlite:///").split("?")[0]  # sqlite:////abs or sqlite:///rel
    if database not in ("", ":memory:") and not Path(database).exists():
        raise RegistryUnavailableError(
            f"no registry: {uri} does not exist (MLFLOW_TRACKING_URI names the registry)"
        )


class RegistrySync:
    def __init__(self, settings: ModelSettings, cache: ModelCache) -> None:
        self.settings = settings
        self.cache = cache

    def alias_version(self) -> RegistryVersion:
        from mlflow import MlflowClient

        uri = self.settings.mlflow_tracking_uri
        require_registry(uri)
        found = MlflowClient(uri, uri).get_model_version_by_alias(
            self.settings.model_name, self.settings.model_alias
        )
        return RegistryVersion(str(found.version), found.run_id)

    def download(self, version: RegistryVersion) -> Path:
        """Copy the model version into the cache (once); return its directory."""
        import mlflow

        target = self.cache.version_dir(version.version)
        if (target / "MLmodel").exists():
            return target
        require_registry(self.settings.mlflow_tracking_uri)
        self.cache.dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.cache.dir, prefix=".download-"))
        try:
            uri = f"models:/{self.settings.model_name}/{version.version}"
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(staging))
            if not target.exists():
                publish_dir(Path(local), target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def save_scorer(self, version: RegistryVersion) -> None:
        """Save the serving form next to the download (once). Models the compiler cannot save
        are left as they are: workers then compile them in-process."""
        target = self.cache.scorer_dir(version.version)
        if (target / "scorer.json").exists():
            return
        scorer = self.cache.compile_model(version.version)
        try:
            with atomic_dir(target) as staging:
                save_scorer(scorer, staging)
        except TypeError as exc:  # not savable: fine, see the docstring
            log.info("serving version %s uncompiled: %s", version.version, exc)

    def sync(self) -> Pointer:
        """One round. Registry reachable: make sure the alias's version is cached, point at it.
        Unreachable: keep the cached version (marked as such) and re-raise.
        With a pinned MODEL_VERSION, that version and no other (see `sync_pinned`)."""
        if self.settings.model_version is not None:
            return self.sync_pinned(self.settings.model_version)
        name = self.settings.model_name
        try:
            wanted = self.alias_version()
        except Exception as exc:  # registry failures come in many types; all mean "use cache"
            self._fall_back(f"registry unavailable: {exc}")
            raise
        current = self.cache.read_pointer()
        pointer = Pointer(name, wanted.version, wanted.run_id, "registry")
        if current == pointer:
            return current
        self.download(wanted)
        self.save_scorer(wanted)
        self.cache.write_pointer(pointer)
        return pointer

    def sync_pinned(self, version: str) -> Pointer:
        """Serve exactly `version`: from the cache, else the image's baked copy, else the
        registry. Never another version: a release is one model and one image."""
        current = self.cache.read_pointer()
        if current is not None and current.version == version:
            return current
        pointer = self.seed_from_image(version)
        if pointer is None:
            wanted = RegistryVersion(version, None)
            try:
                self.download(wanted)
            except Exception:
                reason = (
                    f"pinned version {version} is neither baked nor cached, "
                    "and the registry is unavailable"
                )
                self.cache.write_pointer(
                    Pointer(self.settings.model_name, None, None, "cache", reason)
                )
                raise
            self.save_scorer(wanted)
            pointer = Pointer(self.settings.model_name, version, None, "registry")
        self.cache.write_pointer(pointer)
        return pointer

    def seed_from_image(self, version: str) -> Pointer | None:
        """Copy the version baked into the image (MODEL_BAKED_DIR) into the writable cache."""
        if self.settings.model_baked_dir is None:
            return None
        baked = ModelCache(self.settings.model_baked_dir, self.settings.model_name)
        source = baked.version_dir(version)
        if not source.is_dir():
            return None
        target = self.cache.version_dir(version)
        if not target.exists():
            with atomic_dir(target) as staging:
                shutil.copytree(source, staging, dirs_exist_ok=True)
        self.save_scorer(RegistryVersion(version, None))  # no-op when the scorer was baked too
        baked_pointer = baked.read_pointer()
        run_id = (
            baked_pointer.run_id if baked_pointer and baked_pointer.version == version else None
        )
        return Pointer(self.settings.model_name, version, run_id, "image")

    def _fall_back(self, reason: str) -> None:
        current = self.cache.read_pointer()
        if current is not None and current.version is not None:
            if current.source != "cache":
                self.cache.write_pointer(replace(current, source="cache", reason=reason))
            return
        reason = f"{reason}; no cached model in {self.cache.dir}"
        self.cache.write_pointer(Pointer(self.settings.model_name, None, None, "cache", reason))

    def watch(self, interval: float, stop: threading.Event, on_failure: Callable[[], None],
              also: Callable[[], object] | None = None) -> None:  # fmt: skip
        while not stop.wait(interval):
            try:
                self.sync()
            except Exception as exc:  # keep the cached model; log, count, try again
                log.warning("registry sync failed: %s", exc)
                on_failure()
            if also is not None:
                also()


class ShadowSync:
    """Keeps the cache's shadow pointer on the candidate: `uri` (models:/<name>@<alias> or
    /<version>), by default the model's `staging` alias. No version when there is no candidate,
    when it is the version production serves, or when the registry cannot say (shadowing is an
    extra: it stops rather than score with a candidate nobody can confirm)."""

    def __init__(self, settings: ModelSettings, cache: ModelCache, uri: str | None) -> None:
        match = MODEL_URI.match(uri) if uri else None
        alias = match["alias"] if match else (None if uri else STAGING_ALIAS)
        self.version = match["version"] if match else None
        self.uri = uri or f"models:/{settings.model_name}@{STAGING_ALIAS}"
        target = {"model_alias": alias or settings.model_alias, "model_version": None}
        self.registry = RegistrySync(settings.model_copy(update=target), cache)
        self.production = cache  # its pointer: what production serves
        self.cache = cache.with_pointer(SHADOW_POINTER)

    def sync(self) -> Pointer:
        """One round; never raises (the reason is in the pointer)."""
        name = self.registry.settings.model_name
        try:
            wanted = RegistryVersion(self.version, None) if self.version else (
                self.registry.alias_version())  # fmt: skip
        except Exception as exc:  # no such alias, or no registry: nothing to shadow
            return self._none(f"no candidate at {self.uri}: {first_line(exc)}")
        serving = self.production.read_pointer()
        if serving is not None and serving.version == wanted.version:
            return self._none(f"the candidate {self.uri} is version {wanted.version}, production")
        pointer = Pointer(name, wanted.version, wanted.run_id, "registry")
        if self.cache.read_pointer() != pointer:
            try:
                self.registry.download(wanted)
                self.registry.save_scorer(wanted)
            except Exception as exc:
                return self._none(f"candidate {wanted.version} unavailable: {first_line(exc)}")
            self.cache.write_pointer(pointer)
        return pointer

    def _none(self, reason: str) -> Pointer:
        pointer = Pointer(self.registry.settings.model_name, None, None, "registry", reason)
        if self.cache.read_pointer() != pointer:
            self.cache.write_pointer(pointer)
        return pointer

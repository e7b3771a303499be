from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline

from tests.helpers import review_files, tiny_model, write_archive

# The real archive, when the caller (CI, a developer) points IMDB_SOURCE at it. Captured once:
# each test then runs with IMDB_SOURCE unset so params parsing is not affected by it.
FULL_DATA_SOURCE = os.environ.get("IMDB_SOURCE")
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own MLflow store; nothing touches the project's mlflow.db."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "model-cache"))
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("IMDB_SOURCE", raising=False)
    yield


@pytest.fixture
def small_archive(tmp_path: Path) -> Path:
    return write_archive(tmp_path / "aclImdb_small.tar.gz", review_files(per_label=20))


@pytest.fixture(scope="session")
def small_model() -> Pipeline:
    return tiny_model()


def require_tool(name: str) -> str:
    """Path of a system tool; skip without it on a laptop, but fail in CI (which installs it)."""
    import shutil

    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI but is not installed")
        pytest.skip(f"{name} not installed")
    return path

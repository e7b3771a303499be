from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline

from harness.postgres import PostgresServer, pg_bin
from tests.helpers import review_files, tiny_model, write_archive

# The real archive, when the caller (CI, a developer) points IMDB_SOURCE at it. Captured once:
# each test then runs with IMDB_SOURCE unset so params parsing is not affected by it.
FULL_DATA_SOURCE = os.environ.get("IMDB_SOURCE")
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own MLflow store and working directory: MLflow puts artifacts in
    ./mlruns, and nothing may touch the project's own store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "model-cache"))
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("IMDB_SOURCE", raising=False)
    # Tests post feedback to servers without tokens, as `make run` does; the fail-closed default
    # has tests of its own (tests/unit/serving/test_auth.py).
    monkeypatch.setenv("ALLOW_ANONYMOUS_WRITES", "true")


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


def _absolute(source: str) -> str:
    """Resolve a local path now: the pipeline runs in another directory."""
    if "://" in source:
        return source
    return str(Path(source).resolve())


@pytest.fixture(scope="session")
def full_pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The real pipeline on the real archive, once per session, in a throwaway copy."""
    from harness.project import make_project, run

    if not FULL_DATA_SOURCE:
        if IN_CI:
            pytest.fail("CI must set IMDB_SOURCE to the real archive")
        pytest.skip("IMDB_SOURCE not set: full-data tests need the real archive")
    base = tmp_path_factory.mktemp("fulldata")
    env = {
        "IMDB_SOURCE": _absolute(FULL_DATA_SOURCE),
        "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}",
    }
    project = make_project(base / "project")
    run(["dvc", "repro"], project, env)
    run(["imdb-sentiment", "promote"], project, env)
    return project, env


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (Debian's postgresql; CI installs it)."""
    bindir = pg_bin()
    if bindir is None:
        if IN_CI:
            pytest.fail("PostgreSQL (initdb) is required in CI but is not installed")
        pytest.skip("PostgreSQL not installed")
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty prediction store, migrated to the newest schema, on each dialect."""
    from imdb_sentiment.store.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'predictions.db'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    upgrade(url)
    return url

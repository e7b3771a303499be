"""A gunicorn worker's app: the sidecar sync's cache, and a store it never migrates (the master
does, once); a lone app (`create_app`) migrates the embedded store itself."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.http.context import service_of
from imdb_sentiment.serving.http.wsgi import worker_app
from imdb_sentiment.serving.service_settings import load_settings


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master")}


def test_a_worker_follows_the_sidecar_sync_and_never_migrates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'worker.db'}")
    monkeypatch.setenv("PREDICTION_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.delenv("MODEL_SYNC", raising=False)
    app = worker_app()
    service = service_of(app)
    try:
        assert service.settings.service.model_sync == "sidecar"
        assert "alembic_version" not in tables(tmp_path / "worker.db")
    finally:
        service.close()
    lone = create_app(load_settings(database_url=f"sqlite:///{tmp_path / 'lone.db'}",
                                    prediction_spool_dir=str(tmp_path / "spool-lone")))  # fmt: skip
    try:
        assert "alembic_version" in tables(tmp_path / "lone.db")
    finally:
        service_of(lone).close()

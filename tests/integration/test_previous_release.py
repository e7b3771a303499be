"""A rollback across a schema migration, run for real: the previous release's code (a git
worktree of the commit before the newest migration was added) serves against a real PostgreSQL
database that this release's `imdb-sentiment db upgrade` migrated. It starts (with migrations
left to the release step, and with DATABASE_MIGRATE=auto too), is ready, predicts, and takes
feedback: migrations stay additive for a release (expand, then contract), and the old code
judges a newer schema it does not know by what it needs (store.schema) instead of crashing on
alembic's "Can't locate revision"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from harness.postgres import PostgresServer
from harness.project import ROOT, run
from harness.server import Pod
from imdb_sentiment.store.schema import MIGRATIONS, head
from tests.git_history import release_before
from tests.unit.serving.test_live_model import publish

pytestmark = pytest.mark.slow


def newest_migration() -> Path:
    script = next(p for p in (MIGRATIONS / "versions").glob("*.py")
                  if f'revision = "{head()}"' in p.read_text())  # fmt: skip
    return script.relative_to(ROOT)


@pytest.fixture
def previous_release(tmp_path: Path) -> Iterator[Path]:
    """A worktree of the commit before the one that added the newest migration."""
    with release_before(newest_migration(), tmp_path / "previous") as tree:
        yield tree


def test_the_previous_release_serves_on_the_new_schema(
    previous_release: Path, tmp_path: Path, postgres: PostgresServer
) -> None:
    config = Config()
    migrations = previous_release / "src/imdb_sentiment/store/migrations"
    config.set_main_option("script_location", str(migrations))
    old_head = ScriptDirectory.from_config(config).get_current_head()
    assert old_head != head(), "the worktree predates the newest migration"
    publish(seed=1)
    url = postgres.new_database()
    migrated = run(["imdb-sentiment", "db", "upgrade"], ROOT, {"DATABASE_URL": url})
    assert f"schema at revision {head()}" in migrated.stdout
    old_code = str(previous_release / "src")
    probe = run(["python", "-c", "import imdb_sentiment; print(imdb_sentiment.__file__)"],
                tmp_path, {"PYTHONPATH": old_code})  # fmt: skip
    assert probe.stdout.strip().startswith(old_code)  # the previous release's code is served

    for migrate in ("off", "auto"):
        pod = Pod(tmp_path / f"pod-{migrate}", {
            "PYTHONPATH": old_code, "DATABASE_URL": url, "DATABASE_MIGRATE": migrate,
        })  # fmt: skip
        pod.start()
        try:
            assert requests.get(f"{pod.url}/readyz", timeout=5).status_code == 200
            done = requests.post(f"{pod.url}/api/v1/predict", json={"text": "A fine film."},
                                 timeout=10)  # fmt: skip
            assert done.status_code == 200
            rid = done.headers["X-Request-ID"]
            body = {"request_id": rid, "label": done.json()["label"]}
            answer = requests.post(f"{pod.url}/api/v1/feedback", json=body, timeout=10)
            assert answer.status_code == 201, answer.text
        finally:
            assert pod.stop() == 0
        if migrate == "off":  # its judgement of the schema, one line per worker
            assert f"newer than this release's {old_head} and compatible" in pod.log()
        assert "Can't locate revision" not in pod.log() and "Traceback" not in pod.log()
    engine = create_engine(url)
    with engine.connect() as db:
        version = db.execute(text("SELECT version_num FROM alembic_version")).scalar()
        labels = db.execute(text("SELECT count(*) FROM feedback")).scalar()
    engine.dispose()
    assert (version, labels) == (head(), 2)  # the old code changed nothing of the schema

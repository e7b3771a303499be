"""The schema a process meets, judged by this release: current, newer (and compatible), older,
missing, incompatible; `upgrade` migrates only what it knows and leaves a newer compatible
schema alone (a rollback), on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import time
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from harness.postgres import PostgresServer
from imdb_sentiment.store.database import PredictionStore
from imdb_sentiment.store.engine import make_engine
from imdb_sentiment.store.migrate import upgrade
from imdb_sentiment.store.schema import MIGRATIONS, head, known_revisions
from imdb_sentiment.store.store_errors import SchemaError


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


def migrate_to(url: str, revision: str) -> None:
    engine = make_engine(url)
    with engine.connect() as connection:  # migrations/env.py commits each revision
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def execute(url: str, *statements: str) -> None:
    engine = make_engine(url)
    with engine.begin() as db:
        for statement in statements:
            db.execute(text(statement))
    engine.dispose()


def future(url: str, *changes: str) -> None:
    """The database as a later release leaves it: its own revision, and `changes`."""
    upgrade(url)
    execute(url, *changes, "UPDATE alembic_version SET version_num = 'f00d_later'")


def state_of(url: str) -> Any:
    store = PredictionStore(url)
    return store.check_schema()


def test_missing_then_current(empty_url: str) -> None:
    assert state_of(empty_url).status == "missing"
    state = upgrade(empty_url)
    assert (state.status, state.revision) == ("current", head())
    assert upgrade(empty_url).status == "current"  # idempotent


def test_an_older_revision_is_not_usable_until_upgraded(empty_url: str) -> None:
    oldest = min(known_revisions())
    migrate_to(empty_url, oldest)
    state = state_of(empty_url)
    assert (state.status, state.usable) == ("older", False)
    assert "db upgrade" in state.detail
    assert upgrade(empty_url).status == "current"


def test_a_newer_additive_schema_is_used_and_left_alone(empty_url: str) -> None:
    future(empty_url, "ALTER TABLE predictions ADD COLUMN later_signal INTEGER",
           "ALTER TABLE feedback ADD COLUMN note VARCHAR(10) DEFAULT 'x' NOT NULL")  # fmt: skip
    state = state_of(empty_url)
    assert (state.status, state.usable, state.revision) == ("newer", True, "f00d_later")
    assert upgrade(empty_url).status == "newer"  # no "Can't locate revision"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("ALTER TABLE predictions DROP COLUMN tokens", "column predictions.tokens is gone"),
        ("ALTER TABLE predictions ADD COLUMN shard INTEGER NOT NULL DEFAULT 0", None),
        ("DROP TABLE feedback", "table feedback is gone"),
    ],
)
def test_a_newer_schema_that_took_something_away_is_incompatible(
    empty_url: str, change: str, problem: str | None
) -> None:
    future(empty_url, change)
    state = state_of(empty_url)
    if problem is None:  # a required column *with* a default: inserts still succeed
        assert state.status == "newer"
        return
    assert (state.status, state.usable) == ("incompatible", False)
    assert problem in state.detail
    with pytest.raises(SchemaError, match=problem):
        upgrade(empty_url)


def test_a_required_new_column_without_default_is_incompatible(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    columns = (
        "request_id VARCHAR(128), item INTEGER, created FLOAT NOT NULL, actual VARCHAR(8) NOT NULL,"
        " text_sha256 VARCHAR(64), reviewer VARCHAR(20) NOT NULL"
    )
    future(url, "ALTER TABLE feedback RENAME TO feedback_old", f"CREATE TABLE feedback ({columns})")
    state = state_of(url)
    assert state.status == "incompatible"
    assert "feedback.reviewer is required and has no default" in state.detail


def test_readiness_follows_the_schema_without_a_restart(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate_to(url, min(known_revisions()))
    store = PredictionStore(url)
    store.start(schema_every_s=0.05)
    deadline = time.monotonic() + 10
    while store.schema is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    reason = store.unusable_reason()
    assert reason is not None and reason.startswith("prediction store schema older")
    upgrade(url)  # the release step
    deadline = time.monotonic() + 10
    while store.unusable_reason() is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_service_on_an_unmigrated_store_is_not_ready_until_the_release_step(
    tmp_path: Any, small_model: Any
) -> None:
    from imdb_sentiment.serving.http.app import create_app
    from imdb_sentiment.serving.service_settings import load_settings

    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate_to(url, min(known_revisions()))
    settings = load_settings(database_url=url, database_migrate="off")
    client = create_app(settings, model=small_model).test_client()
    deadline = time.monotonic() + 10
    while "not checked yet" in (reason := client.get("/readyz").get_json()["reason"]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert client.get("/readyz").status_code == 503
    assert "older" in reason
    assert client.post("/api/v1/predict", json={"text": "fine"}).status_code == 200  # still served
    upgrade(url)
    from imdb_sentiment.serving.http.context import service_of

    records = service_of(client.application).prediction_store
    assert records is not None
    records.check_schema()  # what the watcher does within its interval
    assert client.get("/readyz").status_code == 200


def _upgrade_in_process(url: str) -> str:
    return upgrade(url).status


def test_first_start_migrates_once_among_many(empty_url: str) -> None:
    """Every worker of a first start on the embedded store migrates at once
    (DATABASE_MIGRATE=auto): one migrates, the others wait and find the schema current."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(6) as pool:
        states = pool.map(_upgrade_in_process, [empty_url] * 6)
    assert states == ["current"] * 6
    assert state_of(empty_url).status == "current"

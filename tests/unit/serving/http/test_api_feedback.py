"""POST /api/v1/feedback and the prediction store behind it, on SQLite and on a real PostgreSQL
server (the `database_url` fixture runs each test on both): labels recorded once, bad feedback a
4xx JSON, metrics by outcome, retention, the bounded writer, the schema's migrations."""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.pipeline import Pipeline
from sqlalchemy import func, insert, inspect, select

from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.http.context import service_of
from imdb_sentiment.serving.service_settings import load_settings
from imdb_sentiment.store import spool as spool_module
from imdb_sentiment.store.database import PredictionStore
from imdb_sentiment.store.migrate import upgrade
from imdb_sentiment.store.records import PredictionRecord, as_row
from imdb_sentiment.store.schema import scripts
from imdb_sentiment.store.spool import Spool
from imdb_sentiment.store.tables import feedback, metadata, predictions
from tests.unit.serving.http.test_web_metrics_openapi import samples

FEEDBACK = "/api/v1/feedback"
PREDICT = "/api/v1/predict"


@pytest.fixture
def app(small_model: Pipeline, database_url: str) -> Flask:
    settings = load_settings(database_url=database_url, max_batch_size=8)
    return create_app(settings, model=small_model)


def record(
    request_id: str, text: str | None = None, created: float | None = None
) -> PredictionRecord:
    return PredictionRecord(
        created or time.time(), request_id, "1", 0.9, "positive", 0.1, 5, 20, text
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def predict(client: FlaskClient, texts: list[str]) -> tuple[str, list[str]]:
    body = {"text": texts[0]} if len(texts) == 1 else {"texts": texts}
    response = client.post(PREDICT, json=body)
    json = response.get_json()
    labels = [json["label"]] if len(texts) == 1 else [p["label"] for p in json["predictions"]]
    return response.headers["X-Request-ID"], labels


def other(label: str) -> str:
    return "negative" if label == "positive" else "positive"


def test_feedback_round_trip_counts_outcomes(client: FlaskClient) -> None:
    rid, (label,) = predict(client, ["A wonderful, moving film."])
    right = client.post(FEEDBACK, json={"request_id": rid, "label": label})
    assert right.status_code == 201
    assert right.get_json() == {
        "request_id": rid,
        "item": 0,
        "label": label,
        "predicted": label,
        "correct": True,
        "model": {"name": "imdb-sentiment", "version": "injected"},
    }
    rid2, labels = predict(client, ["Dull.", "Great acting, lovely score."])
    wrong = client.post(FEEDBACK, json={"request_id": rid2, "item": 1, "label": other(labels[1])})
    assert wrong.status_code == 201 and wrong.get_json()["correct"] is False
    found = samples(client)
    outcomes = {
        dict(labels_)["outcome"]: value
        for (name, labels_), value in found.items()
        if name == "model_feedback_total"
    }
    assert sum(outcomes.values()) == 2
    hit = "tp" if label == "positive" else "tn"
    miss = "fp" if labels[1] == "positive" else "fn"
    assert outcomes[hit] == 1 and outcomes[miss] == 1


def test_a_label_is_recorded_once(client: FlaskClient) -> None:
    rid, (label,) = predict(client, ["Loved it."])
    assert client.post(FEEDBACK, json={"request_id": rid, "label": label}).status_code == 201
    again = client.post(FEEDBACK, json={"request_id": rid, "label": other(label)})
    assert again.status_code == 409 and again.get_json()["error"] == "duplicate_feedback"
    text = {"text": "A review labelled directly.", "label": "positive"}
    assert client.post(FEEDBACK, json=text).status_code == 201
    assert client.post(FEEDBACK, json=text).status_code == 409


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"request_id": "never-seen", "label": "positive"}, 404, "unknown_prediction"),
        ({"request_id": "x", "label": "meh"}, 422, None),
        ({"label": "positive"}, 422, "missing_reference"),
        ({"request_id": "x", "text": "both", "label": "positive"}, 422, "missing_reference"),
        ({"request_id": "x", "item": -1, "label": "positive"}, 422, None),
        ({"request_id": "x", "label": "positive", "extra": 1}, 422, None),
        (["not", "an", "object"], 422, "invalid_type"),
    ],
)
def test_bad_feedback_is_a_4xx_json(
    client: FlaskClient, body: object, status: int, code: str | None
) -> None:
    response = client.post(FEEDBACK, json=body)
    assert response.status_code == status
    error = response.get_json()
    assert error["detail"] and (code is None or error["error"] == code)


def test_feedback_off_is_a_404(small_model: Pipeline) -> None:
    app = create_app(load_settings(database_url=""), model=small_model)
    response = app.test_client().post(FEEDBACK, json={"request_id": "x", "label": "positive"})
    assert response.status_code == 404 and response.get_json()["error"] == "feedback_disabled"


@pytest.mark.parametrize("keep", [False, True])
def test_texts_are_kept_only_where_the_prediction_log_may_keep_them(
    small_model: Pipeline, database_url: str, keep: bool
) -> None:
    app = create_app(
        load_settings(database_url=database_url, prediction_log_text=keep), model=small_model
    )
    client = app.test_client()
    rid, _ = predict(client, ["Private words about a film."])
    by_text = client.post(FEEDBACK, json={"text": "Labelled by its text.", "label": "positive"})
    service_of(app).close()
    store = PredictionStore(database_url)
    stored = {r.request_id: r.text for r in store.records()}
    assert stored[rid] == ("Private words about a film." if keep else None)
    assert stored[by_text.get_json()["request_id"]] == ("Labelled by its text." if keep else None)
    # Labelled once by its digest, whether or not the text itself is kept.
    again = client.post(FEEDBACK, json={"text": "Labelled by its text.", "label": "negative"})
    assert again.status_code == 409


def writer(url: str, spool: Path, **kwargs: Any) -> PredictionStore:
    """A store as a server writes it: through a spool in `spool`."""
    bounds = {"max_bytes": kwargs.pop("max_bytes", 10**8), "max_age_s": 3600.0}
    return PredictionStore(url, spool=Spool(spool, **bounds), **kwargs)


def count(store: PredictionStore) -> int:
    with store.engine.connect() as db:
        return int(db.execute(select(func.count()).select_from(predictions)).scalar() or 0)


def test_several_writers_share_the_database(database_url: str, tmp_path: Path) -> None:
    """Pods are processes with spools and connections of their own; threads stand in here."""
    stores = [writer(database_url, tmp_path / f"pod{i}") for i in range(4)]

    def write(i: int) -> None:
        for j in range(200):
            stores[i].remember([record(f"w{i}-{j}")])
        stores[i].close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count(stores[0]) == 800


@pytest.mark.parametrize("body", ["by-column", "v2"])
@pytest.mark.parametrize("row_by_row", [False, True], ids=["as-json", "row-by-row"])
def test_a_record_reads_back_as_it_was_kept_every_field(
    database_url: str, tmp_path: Path, row_by_row: bool, body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the spool and the flusher's insert (SQLite's own JSON functions, or row by row
    where they are missing, as on PostgreSQL), in this release's spool bodies and in the ones
    the release before left (a request's records as an array of objects): texts with quotes,
    escapes and other scripts, absent optional fields, full doubles."""
    if body == "v2":
        v2 = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"))
        monkeypatch.setattr(spool_module, "encode_request", v2)  # an array of objects
    store = writer(database_url, tmp_path / "spool", keep_text=True)
    if row_by_row:
        store._json_insert = False  # an SQLite built without JSON functions
    now = time.time()
    kept = [
        PredictionRecord(now + 0.123456789, "r1", "7", 0.123457, "negative", 0.0417, 12, 61,
                         'He said "no" \\ then\nleft: ça, 映画, 🎬', 0, "client-1", "8",
                         0.987654, "positive"),
        PredictionRecord(now, "r1", "7", 1 / 3, "negative", 0.0, 0, 0, None, 1),  # no options
        PredictionRecord(now + 1, "r2", None, 0.5, "positive", 1.0, 3, 3, "", 4),
    ]  # fmt: skip
    store.remember(kept[:2])
    store.remember(kept[2:])
    assert store.flush()
    assert sorted(store.records(), key=lambda r: (r.request_id, r.item, r.time)) == sorted(
        kept, key=lambda r: (r.request_id, r.item, r.time)
    )
    store.close()


def test_old_unlabelled_predictions_are_pruned(database_url: str) -> None:
    store = PredictionStore(database_url, retention_hours=1.0)
    old = time.time() - 7200
    with store.engine.begin() as db:
        for rid in ("old", "old-labelled", "new"):
            created = old if rid.startswith("old") else time.time()
            db.execute(insert(predictions).values(
                request_id=rid, item=0, created=created, model_version="1", probability=0.8,
                label="positive"))  # fmt: skip
        db.execute(insert(feedback).values(request_id="old-labelled", item=0, created=old,
                                           actual="negative"))  # fmt: skip
    assert store.prune() == 1
    assert [p.request_id for p, _, _ in store.labelled()] == ["old-labelled"]
    assert {r.request_id for r in store.records()} == {"old-labelled", "new"}


def test_retention_runs_once_per_interval_across_replicas(database_url: str) -> None:
    replicas = [PredictionStore(database_url, prune_interval_s=300) for _ in range(5)]
    now = time.time()
    runs = [r.prune_if_due(now) for r in replicas]
    assert [x is not None for x in runs].count(True) == 1  # one of five ran the DELETE
    assert all(r.prune_if_due(now + 299) is None for r in replicas)  # still the same interval
    assert [r.prune_if_due(now + 301) is not None for r in replicas].count(True) == 1


def test_a_full_spool_drops_whole_requests_and_counts_them(
    database_url: str, tmp_path: Path
) -> None:
    store = writer(database_url, tmp_path / "spool", max_bytes=2000)
    kept = sum(bool(store.spool.append([as_row(record(f"q{i}"))])) for i in range(50))  # type: ignore[union-attr]
    assert 0 < kept < 50  # bounded: what fits is kept, the rest dropped
    state = store.spool.state()  # type: ignore[union-attr]
    assert (state.records, state.ledger["dropped_full"]) == (kept, 50 - kept)
    assert store.flush()
    assert count(store) == kept and store.spool.state().ledger["written"] == kept  # type: ignore[union-attr]


def test_records_wait_in_the_spool_while_the_database_is_away_then_are_written_once(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'later.db'}"  # no schema yet: every insert fails
    store = writer(url, tmp_path / "spool")
    store.remember([record(f"u{i}") for i in range(3)])
    time.sleep(0.3)  # the flusher has tried, and failed
    assert store.spool is not None and store.spool.state().records == 3
    upgrade(url)  # the database is back
    deadline = time.monotonic() + 10
    while store.spool.state().records:
        assert time.monotonic() < deadline, "the spool was not written when the database came back"
        time.sleep(0.05)
    store.close()
    assert count(store) == 3
    # Written twice (a flusher killed between the database's commit and the spool's ack): once.
    again = writer(url, tmp_path / "spool-again")
    again.spool.append([as_row(record(f"u{i}")) for i in range(3)])  # type: ignore[union-attr]
    assert again.flush() and count(again) == 3


def test_migrations_create_exactly_the_declared_schema(database_url: str) -> None:
    store = PredictionStore(database_url)
    with store.engine.connect() as db:
        found = inspect(db)
        for table in metadata.sorted_tables:
            columns = {c["name"] for c in found.get_columns(table.name)}
            assert columns == {c.name for c in table.columns}, table.name
            indexes = {i["name"] for i in found.get_indexes(table.name)}
            assert {i.name for i in table.indexes} <= indexes, table.name


def test_an_old_feedback_database_is_upgraded_in_place(tmp_path: Path) -> None:
    """A FEEDBACK_DB file of the previous release (no Alembic table) becomes the store."""
    path = tmp_path / "feedback.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE predictions (request_id TEXT NOT NULL, item INTEGER NOT NULL,
            created REAL NOT NULL, model_version TEXT, probability REAL NOT NULL,
            label TEXT NOT NULL, text TEXT, PRIMARY KEY (request_id, item));
        CREATE INDEX predictions_created ON predictions (created);
        CREATE TABLE feedback (request_id TEXT NOT NULL, item INTEGER NOT NULL,
            created REAL NOT NULL, actual TEXT NOT NULL, text_sha256 TEXT UNIQUE,
            PRIMARY KEY (request_id, item));
        INSERT INTO predictions VALUES ('old', 0, 1700000000.5, '3', 0.25, 'negative', NULL);
        INSERT INTO feedback VALUES ('old', 0, 1700000100.0, 'positive', NULL);
        """
    )
    old.close()
    url = f"sqlite:///{path}"
    assert upgrade(url).revision == scripts().get_current_head()
    store = PredictionStore(url)
    [(prediction, actual, at)] = list(store.labelled())
    assert (prediction.request_id, prediction.model_version, prediction.label) == (
        "old",
        "3",
        "negative",
    )
    assert actual == "positive" and at == 1700000100.0
    assert prediction.tokens == -1  # recorded before the store kept drift's signals
    spooled = writer(url, tmp_path / "spool")
    spooled.remember([record("new")])
    spooled.close()
    assert store.lookup("new", 0).tokens == 5
    assert upgrade(url).revision == scripts().get_current_head()  # idempotent


def test_the_page_offers_the_feedback_control(client: FlaskClient, app: Flask) -> None:
    page = client.post("/predict", data={"text": "What a great film!"}).get_data(as_text=True)
    assert 'id="feedback"' in page and 'data-url="/api/v1/feedback"' in page
    service_of(app).close()


def test_export_writes_dataset_rows_and_fails_cleanly_without_a_database(
    client: FlaskClient,
    app: Flask,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from imdb_sentiment.cli.main import app as cli

    rid, (label,) = predict(client, ["Private words."])
    client.post(FEEDBACK, json={"request_id": rid, "label": other(label)})
    service_of(app).close()
    out = tmp_path / "labels.parquet"
    runner = CliRunner()
    monkeypatch.setenv("DATABASE_URL", database_url)
    done = runner.invoke(cli, ["feedback", "export", str(out)])
    assert done.exit_code == 0 and "wrote 1 labelled rows (0 with text)" in done.output
    frame = pd.read_parquet(out)
    assert frame["text"].isna().all()  # not kept: PREDICTION_LOG_TEXT is off
    assert frame["label"].tolist() == [1 if other(label) == "positive" else 0]
    later = runner.invoke(cli, ["feedback", "export", str(out), "--since", "1h", "--until",
                                "2100-01-01T00:00:00", "--model-version", "nope"])  # fmt: skip
    assert later.exit_code == 0 and "wrote 0 labelled rows" in later.output
    target = str(tmp_path / "x.parquet")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'nope.db'}")
    missing = runner.invoke(cli, ["feedback", "export", target])
    assert missing.exit_code == 1 and "no prediction store at" in missing.output
    assert not (tmp_path / "x.parquet").exists()


def test_an_integral_number_is_an_item_as_json_schema_says(client: FlaskClient) -> None:
    """schemathesis found `"item": 194.0` (an integer to JSON Schema) rejected."""
    rid, labels = predict(client, ["Good.", "Bad."])
    ok = client.post(FEEDBACK, json={"request_id": rid, "item": 1.0, "label": labels[1]})
    assert ok.status_code == 201 and ok.get_json()["item"] == 1
    for item in (0.5, "1", True):
        refused = client.post(FEEDBACK, json={"request_id": rid, "item": item, "label": "positive"})
        assert refused.status_code == 422, item

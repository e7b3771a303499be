"""POST /api/v1/feedback: labels recorded once, bad feedback a 4xx JSON, metrics by outcome."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.pipeline import Pipeline

from imdb_sentiment.config import load_settings
from imdb_sentiment.serving.feedback import FeedbackStore, Remembered
from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.http.context import ServiceContext
from tests.unit.serving.test_web_metrics_openapi import samples

FEEDBACK = "/api/v1/feedback"
PREDICT = "/api/v1/predict"


@pytest.fixture
def app(small_model: Pipeline, tmp_path: Path) -> Flask:
    settings = load_settings(feedback_db=str(tmp_path / "feedback.db"), max_batch_size=8)
    return create_app(settings, model=small_model)


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
    app = create_app(load_settings(feedback_db=""), model=small_model)
    response = app.test_client().post(FEEDBACK, json={"request_id": "x", "label": "positive"})
    assert response.status_code == 404 and response.get_json()["error"] == "feedback_disabled"


def test_texts_are_kept_only_where_the_prediction_log_may_keep_them(tmp_path: Path) -> None:
    private = FeedbackStore(str(tmp_path / "a.db"), keep_text=False)
    private.remember(Remembered("r", 0, "1", 0.9, "positive", "secret text"))
    private.close()
    assert private.lookup("r", 0).text is None
    kept = FeedbackStore(str(tmp_path / "b.db"), keep_text=True)
    kept.remember(Remembered("r", 0, "1", 0.9, "positive", "kept text"))
    kept.close()
    assert kept.lookup("r", 0).text == "kept text"


def test_several_writers_share_the_database(tmp_path: Path) -> None:
    """Workers are processes with their own connections; threads stand in for them here."""
    stores = [FeedbackStore(str(tmp_path / "f.db"), keep_text=False) for _ in range(4)]

    def write(i: int) -> None:
        for j in range(200):
            stores[i].remember(Remembered(f"w{i}-{j}", 0, "1", 0.7, "positive"))
        stores[i].close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    count = stores[0].connect().execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    assert count == 800


def test_old_unlabelled_predictions_are_pruned(tmp_path: Path) -> None:
    store = FeedbackStore(str(tmp_path / "f.db"), keep_text=False, window_hours=1.0)
    db = store.connect()
    old = time.time() - 7200
    for rid in ("old", "old-labelled"):
        db.execute(
            "INSERT INTO predictions VALUES (?, 0, ?, '1', 0.8, 'positive', NULL)", (rid, old)
        )
    db.execute("INSERT INTO feedback VALUES ('old-labelled', 0, ?, 'negative', NULL)", (old,))
    assert store.prune() == 1
    assert [row[0] for row in store.labelled()] == ["old-labelled"]


def test_the_page_offers_the_feedback_control(client: FlaskClient, app: Flask) -> None:
    page = client.post("/predict", data={"text": "What a great film!"}).get_data(as_text=True)
    assert 'id="feedback"' in page and 'data-url="/api/v1/feedback"' in page
    ServiceContext.of(app).close()


def test_export_writes_dataset_rows_and_fails_cleanly_without_a_database(
    client: FlaskClient, app: Flask, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from imdb_sentiment.cli import app as cli

    rid, (label,) = predict(client, ["Private words."])
    client.post(FEEDBACK, json={"request_id": rid, "label": other(label)})
    ServiceContext.of(app).close()
    out = tmp_path / "labels.parquet"
    runner = CliRunner()
    db = str(tmp_path / "feedback.db")
    done = runner.invoke(cli, ["feedback", "export", str(out), "--db", db])
    assert done.exit_code == 0 and "wrote 1 labelled rows (0 with text)" in done.output
    frame = pd.read_parquet(out)
    assert frame["text"].isna().all()  # not kept: PREDICTION_LOG_TEXT is off
    assert frame["label"].tolist() == [1 if other(label) == "positive" else 0]
    target = str(tmp_path / "x.parquet")
    missing = runner.invoke(cli, ["feedback", "export", target, "--db", "nope.db"])
    assert missing.exit_code == 1 and "no feedback database" in missing.output
    assert not (tmp_path / "x.parquet").exists()

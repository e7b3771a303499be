"""The prediction store shared by two instances of the service ("pods": each its own working
directory, port, model cache, spool and metrics), each real gunicorn with 2 workers, on one real
PostgreSQL server and on one SQLite file: feedback for a prediction made on one instance is taken
by the other; labels survive both instances' restarts and are exported; with the database down,
predictions are still answered and wait in the spool, feedback is a 503; when it is back, the
predictions made meanwhile are stored and take feedback, without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pandas as pd
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.postgres import PostgresServer
from harness.project import ROOT, run
from harness.server import running_service
from tests.unit.serving.test_live_model import publish

pytestmark = pytest.mark.slow
TEXTS = [f"A fine film, number {i}." for i in range(15)] + ["Awful, boring mess."] * 5


def metric(url: str, name: str, **labels: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def other(label: str) -> str:
    return "negative" if label == "positive" else "positive"


@contextmanager
def pods(base: Path, database_url: str, names: tuple[str, ...] = ("a", "b")) -> Iterator[list[str]]:
    """Instances of the service sharing only the registry and the database."""
    with ExitStack() as stack:
        urls = []
        for name in names:
            home = base / name
            home.mkdir(parents=True, exist_ok=True)
            env = {
                "DATABASE_URL": database_url,
                "MODEL_CACHE_DIR": str(home / "model-cache"),
                "PROMETHEUS_MULTIPROC_DIR": str(home / "prom"),
                "PREDICTION_LOG_TEXT": "true",  # so the export carries texts
            }
            log = home / f"service-{time.monotonic_ns()}.log"
            urls.append(stack.enter_context(running_service(env, log, cwd=home)))
        yield urls


def predict(url: str, text: str) -> tuple[str, str]:
    done = requests.post(f"{url}/api/v1/predict", json={"texts": [text, "Dull plot."]}, timeout=10)
    assert done.status_code == 200
    return done.headers["X-Request-ID"], done.json()["predictions"][0]["label"]


def send(url: str, request_id: str, label: str) -> requests.Response:
    body = {"request_id": request_id, "item": 0, "label": label}
    return requests.post(f"{url}/api/v1/feedback", json=body, timeout=10)


def export(database_url: str, out: Path) -> pd.DataFrame:
    done = run(["imdb-sentiment", "feedback", "export", str(out)], ROOT,
               {"DATABASE_URL": database_url})  # fmt: skip
    assert f"wrote {len(TEXTS)} labelled rows ({len(TEXTS)} with text)" in done.stdout
    return pd.read_parquet(out)


def round_trip(base: Path, database_url: str) -> list[tuple[str, str]]:
    """Predictions on A, feedback on B; then both restarted: the labels are still there."""
    with pods(base, database_url) as (a, b):
        sent = []
        for i, text in enumerate(TEXTS):
            rid, predicted = predict(a, text)
            truth = predicted if i % 4 else other(predicted)  # every 4th one wrong
            answer = send(b, rid, truth)
            assert answer.status_code == 201, answer.text
            assert answer.json()["correct"] == (truth == predicted)
            sent.append((rid, truth))
        assert metric(b, "model_feedback_total") == len(TEXTS)
    with pods(base, database_url) as (a, b):  # both replaced: nothing acknowledged is lost
        for rid, truth in sent:
            assert send(a, rid, truth).status_code == 409
    frame = export(database_url, base / "labels.parquet")
    assert set(frame["text"]) == set(TEXTS)
    assert set(frame["feedback_request_id"]) == {rid for rid, _ in sent}
    return sent


def test_two_instances_share_one_sqlite_store(tmp_path: Path) -> None:
    publish(seed=1)
    round_trip(tmp_path, f"sqlite:///{tmp_path / 'shared/predictions.db'}")


def test_two_instances_share_one_postgres_server_and_survive_an_outage(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    publish(seed=1)
    url = postgres.new_database()
    run(["imdb-sentiment", "db", "upgrade"], ROOT, {"DATABASE_URL": url})
    round_trip(tmp_path, url)

    with pods(tmp_path, url) as (a, b):
        postgres.stop()
        try:
            during = [predict(a, f"Predicted while the database is down, {i}.") for i in range(5)]
            answer = send(b, during[0][0], "positive")
            assert answer.status_code == 503
            assert answer.json()["error"] == "feedback_unavailable"
            assert "postgres" not in answer.text.lower()  # no internals in the body
            deadline = time.monotonic() + 20
            while metric(a, "prediction_spool_records") < 10:  # 5 requests of 2 reviews
                assert time.monotonic() < deadline, "the records did not wait in the spool"
                time.sleep(0.5)
            assert metric(a, "prediction_spool_dropped_records_total") == 0
        finally:
            postgres.start()
        # Back, without a restart: what was predicted meanwhile is stored and takes feedback.
        deadline = time.monotonic() + 30
        for rid, predicted in during:
            while (answer := send(b, rid, predicted)).status_code != 201:
                assert answer.status_code == 503, answer.text
                assert time.monotonic() < deadline, answer.text
                time.sleep(1)
        assert metric(a, "prediction_spool_records") == 0
        assert metric(a, "prediction_spool_written_records_total") >= 10

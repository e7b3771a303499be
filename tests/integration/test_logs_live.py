"""Logs and the prediction log through real gunicorn (2 workers, the sync process): every line
one JSON object, the request id end to end, the sample rate under load, nothing lost on SIGTERM."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from harness.server import running_service
from tests.unit.serving.test_live_model import publish

pytestmark = pytest.mark.slow
PREDICT = "/api/v1/predict"


def post(url: str, texts: list[str], request_id: str | None = None) -> requests.Response:
    headers = {"X-Request-ID": request_id} if request_id else {}
    body = {"text": texts[0]} if len(texts) == 1 else {"texts": texts}
    response = requests.post(f"{url}{PREDICT}", json=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_line_is_json_and_the_request_id_runs_end_to_end(tmp_path: Path) -> None:
    publish(seed=1)
    log = tmp_path / "service.log"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "PREDICTION_LOG_RATE": "1"}
    with running_service(env, log) as url:
        traced = post(url, ["A moving, beautifully acted film."], request_id="trace-42")
        generated = post(url, ["Dull.", "Wooden acting."]).headers["X-Request-ID"]
    parsed = lines(log)  # raises on any line that is not one JSON object
    assert {"gunicorn.error", "gunicorn.access"} <= {str(line.get("logger")) for line in parsed}
    assert any(line.get("logger") == "imdb_sentiment.serving.server" for line in parsed)
    ours = traced.headers["X-Request-ID"]
    assert ours != "trace-42"  # the server's id; the caller's is carried beside it
    for rid, predictions, client in ((ours, 1, "trace-42"), (generated, 2, None)):
        about = [line for line in parsed if line.get("request_id") == rid]
        assert [line["event"] for line in about if line.get("event") == "prediction"] == [
            "prediction"
        ] * predictions
        access = [line for line in about if line.get("event") == "access"]
        assert len(access) == 1 and access[0]["path"] == PREDICT and access[0]["status"] == 200
        assert {line.get("client_request_id") for line in about} == {client}


def logged(tmp_path: Path, rate: str) -> tuple[dict[str, str], Path]:
    """A published model, and the service's environment for a prediction log in files."""
    publish(seed=1)
    records = tmp_path / "predictions"
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "PREDICTION_LOG_RATE": rate,
        "PREDICTION_LOG_DIR": str(records),
    }
    return env, records


def test_sample_rate_under_load_and_nothing_lost_on_sigterm(tmp_path: Path) -> None:
    env, records = logged(tmp_path, "0.25")
    texts = ["A fine film.", "Awful.", "Great cast, weak plot.", "Loved every minute."]
    # Leaving the block sends SIGTERM straight after the last response: the workers' queues
    # still hold records, and they must all reach the files.
    with running_service(env, tmp_path / "service.log") as url, ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: post(url, texts).headers["X-Request-ID"], range(500)))
    written = [json.loads(line) for f in records.glob("*.jsonl*") for line in f.open()]
    assert len({f.name for f in records.glob("*.jsonl")}) == 2  # one file per worker
    predictions = 500 * len(texts)
    assert abs(len(written) / predictions - 0.25) < 0.05  # binomial sd ~0.01
    assert {r["request_id"] for r in written} <= set(ids)
    assert all("text" not in r for r in written)


def test_nothing_lost_on_sigterm_at_rate_one(tmp_path: Path) -> None:
    env, records = logged(tmp_path, "1")
    with running_service(env, tmp_path / "service.log") as url, ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: post(url, ["Fine.", "Bad."], f"req-{i}").headers, range(400)))
    written = [json.loads(line) for f in records.glob("*.jsonl*") for line in f.open()]
    assert len(written) == 800
    assert sorted(r["request_id"] for r in written) == sorted(
        h["X-Request-ID"] for h in ids for _ in range(2)
    )

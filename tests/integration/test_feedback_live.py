"""Feedback through real gunicorn with 2 workers: every label recorded once whichever worker
answers, the counters equal the labels sent, and `imdb-sentiment feedback export` writes them
as dataset rows."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.project import ROOT, run
from tests.server import running_service
from tests.unit.serving.test_model_store import publish

pytestmark = pytest.mark.slow


def outcomes(url: str) -> dict[str, float]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {
        s.labels["outcome"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "model_feedback_total"
    }


def other(label: str) -> str:
    return "negative" if label == "positive" else "positive"


def test_feedback_round_trip_with_two_workers(tmp_path: Path) -> None:
    publish(seed=1)
    db = tmp_path / "feedback.db"
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "FEEDBACK_DB": str(db),
        "PREDICTION_LOG_TEXT": "true",  # so the export carries texts
    }
    texts = [f"A fine film, number {i}." for i in range(30)] + ["Awful, boring mess."] * 10
    with running_service(env, tmp_path / "service.log") as url:

        def label_one(i: int) -> tuple[bool, int, int]:
            body = {"texts": [texts[i], "Dull plot."]}
            done = requests.post(f"{url}/api/v1/predict", json=body, timeout=10)
            rid, predicted = done.headers["X-Request-ID"], done.json()["predictions"][0]["label"]
            truth = predicted if i % 4 else other(predicted)  # every 4th one wrong
            answer = {"request_id": rid, "item": 0, "label": truth}
            first = requests.post(f"{url}/api/v1/feedback", json=answer, timeout=10)
            again = requests.post(f"{url}/api/v1/feedback", json=answer, timeout=10)
            return first.json()["correct"], first.status_code, again.status_code

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(label_one, range(len(texts))))
        assert {(first, again) for _, first, again in results} == {(201, 409)}
        counted = outcomes(url)
    right = sum(correct for correct, _, _ in results)
    assert right == 30  # 10 of 40 answered wrong
    assert sum(counted.values()) == 40  # once each, summed over both workers
    assert counted["tp"] + counted["tn"] == right
    out = tmp_path / "labels.parquet"
    done = run(["imdb-sentiment", "feedback", "export", str(out), "--db", str(db)], ROOT)
    assert "wrote 40 labelled rows (40 with text)" in done.stdout
    frame = pd.read_parquet(out)
    assert list(frame.columns[:5]) == ["id", "rating", "label", "movie", "text"]
    assert set(frame["text"]) == set(texts)
    assert (frame["label"] == frame["feedback_predicted"]).sum() == right

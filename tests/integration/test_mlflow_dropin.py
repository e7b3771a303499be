"""The gunicorn service as a drop-in for MLflow's scoring server, and hostile input over real
HTTP: MLflow's own client, chunked bodies, honest metrics and bodies while the registry is down,
and schemathesis against the service's OpenAPI document."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from harness.server import running_service
from tests.conftest import IN_CI
from tests.integration.test_service_gunicorn import metric
from tests.unit.serving.test_live_model import publish

pytestmark = pytest.mark.slow
REVIEWS = ["Wonderful, brilliant film. I loved it.", "Awful, boring waste of time."]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    publish(seed=1)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "MAX_BODY_BYTES": "65536"}
    with running_service(env, tmp_path / "gunicorn.log") as url:
        yield url


def test_mlflow_scoring_client_works_unchanged(service: str) -> None:
    import mlflow
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    host, port = service.removeprefix("http://").split(":")
    client = ScoringServerClient(host, int(port))
    client.wait_server_ready(timeout=30)
    frame = pd.DataFrame({"text": REVIEWS})
    got = np.asarray(client.invoke(frame).get_predictions())
    expected = mlflow.sklearn.load_model("models:/imdb-sentiment@production").predict_proba(REVIEWS)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    csv = requests.post(
        f"{service}/invocations",
        data=frame.to_csv(index=False),
        headers={"Content-Type": "text/csv"},
        timeout=5,
    )
    np.testing.assert_allclose(np.asarray(csv.json()["predictions"]), expected, atol=1e-9)
    shapes = [
        {"dataframe_split": {"columns": ["text"], "data": [[t] for t in REVIEWS]}},
        {"dataframe_split": {"columns": ["id", "text"], "data": [["1", t] for t in REVIEWS]}},
        {"dataframe_records": [{"text": t} for t in REVIEWS]},
        {"inputs": REVIEWS},
        {"inputs": {"text": REVIEWS}},
        {"instances": [{"text": t} for t in REVIEWS], "params": {}},
    ]
    for payload in shapes:  # each JSON shape through MLflow's own client (a str is sent as is)
        got = np.asarray(client.invoke(json.dumps(payload)).get_predictions())
        np.testing.assert_allclose(got, expected, atol=1e-9)
    for data in (REVIEWS, np.array(REVIEWS)):  # lists and arrays become {"inputs": ...}
        got = np.asarray(client.invoke(data, params={"unused": 1}).get_predictions())
        np.testing.assert_allclose(got, expected, atol=1e-9)


HOSTILE = [
    ("/api/v1/predict", "application/json", b"[" * 60_000),
    ("/invocations", "application/json", b'{"a":' * 10_000),
    ("/api/v1/predict", "application/json", b'{"text": ' + b"1" * 5000 + b"}"),
    ("/invocations", "application/json", b'{"inputs": [' + b"9" * 5000 + b"]}"),
    ("/invocations", "text/csv", b'text\n"unterminated'),
    ("/invocations", "text/csv", b"\xff\xfe"),
    ("/api/v1/predict", "application/json", b'{"text": "\\ud800"}'),
    ("/api/v1/predict", "application/x-www-form-urlencoded", b"text=hi"),
    ("/predict", "application/x-www-form-urlencoded", b"text=" + b"z" * 60_000),
]


def test_hostile_inputs_get_4xx_json_and_the_service_stays_healthy(service: str) -> None:
    for path, content_type, body in HOSTILE:
        response = requests.post(
            f"{service}{path}", data=body, headers={"Content-Type": content_type}, timeout=10
        )
        assert 400 <= response.status_code < 500, (path, body[:40], response.status_code)
        if path != "/predict":  # the form answers with its page
            assert response.json()["error"], response.text
        assert len(response.content) < 20_000
    assert requests.get(f"{service}/readyz", timeout=5).status_code == 200
    ok = requests.post(f"{service}/api/v1/predict", json={"text": "great"}, timeout=5)
    assert ok.status_code == 200


def test_chunked_body_over_the_limit_is_413(service: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}'

    response = requests.post(
        f"{service}/api/v1/predict",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"


def test_registry_down_and_no_cache_honest_metrics_and_no_internals(tmp_path: Path) -> None:
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "MODEL_CACHE_DIR": str(tmp_path / "empty-cache"),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
    }
    with running_service(env, tmp_path / "gunicorn.log", ready_path="/healthz") as url:
        responses = [
            requests.get(f"{url}/readyz", timeout=5),
            requests.get(f"{url}/ping", timeout=5),
            requests.post(f"{url}/api/v1/predict", json={"text": "hi"}, timeout=5),
            requests.post(f"{url}/invocations", json={"inputs": ["hi"]}, timeout=5),
        ]
        assert [r.status_code for r in responses] == [503] * 4
        for response in responses:
            for leak in ("127.0.0.1:9", str(tmp_path), "Error", "registry", "Traceback"):
                assert leak not in response.text, (leak, response.text)
        assert responses[3].json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert metric(url, "model_reload_total", result="failure") >= 1
    assert "registry unavailable" in (tmp_path / "gunicorn.log").read_text()  # logged instead


def test_schemathesis_finds_no_server_error_or_schema_violation(
    service: str, tmp_path: Path
) -> None:
    if importlib.util.find_spec("schemathesis") is None:
        if IN_CI:
            pytest.fail("schemathesis is a pinned dev dependency")
        pytest.skip("schemathesis not installed")
    cli = Path(sys.executable).parent / "st"
    result = subprocess.run(
        [
            str(cli),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{service}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "60",
            "--seed",
            "1",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_COLOR": "1"},
        cwd=tmp_path,  # its cache (.schemathesis/) lands there
        check=False,
    )
    (tmp_path / "schemathesis.log").write_text(result.stdout + result.stderr)
    summary = "\n".join(line[:300] for line in result.stdout.splitlines()[-60:])
    assert result.returncode == 0, summary

"""Every JSON endpoint and every kind of bad input, through Flask's test client."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flask.testing import FlaskClient
from sklearn.pipeline import Pipeline

POSITIVE = "Wonderful, brilliant film. I loved it."
NEGATIVE = "Awful, boring waste of time."


def test_single_prediction(client: FlaskClient, small_model: Pipeline) -> None:
    response = client.post("/api/v1/predict", json={"text": POSITIVE})
    assert response.status_code == 200
    body = response.get_json()
    assert body["label"] == "positive"
    expected = small_model.predict_proba([POSITIVE])[0, 1]
    assert body["scores"]["positive"] == pytest.approx(expected, abs=1e-6)
    assert body["probability"] == pytest.approx(max(expected, 1 - expected), abs=1e-6)
    assert body["model"] == {"name": "imdb-sentiment", "version": "injected"}
    assert "explanation" not in body


def test_explanation_lists_terms_pushing_each_way(client: FlaskClient) -> None:
    body = client.post("/api/v1/predict", json={"text": NEGATIVE, "explain": True}).get_json()
    assert body["label"] == "negative"
    terms = {e["term"]: e for e in body["explanation"]}
    assert terms["awful"]["direction"] == "negative" and terms["awful"]["weight"] < 0
    weights = [abs(e["weight"]) for e in body["explanation"]]
    assert weights == sorted(weights, reverse=True)


def test_batch_prediction_keeps_order(client: FlaskClient) -> None:
    body = client.post("/api/v1/predict", json={"texts": [POSITIVE, NEGATIVE]}).get_json()
    assert [p["label"] for p in body["predictions"]] == ["positive", "negative"]


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": ["text"], "data": [[POSITIVE], [NEGATIVE]]}},
        {"dataframe_records": [{"text": POSITIVE}, {"text": NEGATIVE}]},
        {"inputs": [POSITIVE, NEGATIVE]},
        {"instances": [POSITIVE, NEGATIVE]},
        {"inputs": {"text": [POSITIVE, NEGATIVE]}},
        {"instances": [{"text": POSITIVE}, {"text": NEGATIVE}]},
        {"instances": [[POSITIVE], [NEGATIVE]]},
    ],
)
def test_mlflow_invocations_protocol(
    client: FlaskClient, small_model: Pipeline, payload: dict
) -> None:
    response = client.post("/invocations", json=payload)
    assert response.status_code == 200, response.get_json()
    got = np.array(response.get_json()["predictions"])
    np.testing.assert_allclose(got, small_model.predict_proba([POSITIVE, NEGATIVE]), atol=1e-9)


def error_of(response) -> tuple[int, str]:
    body = response.get_json()
    assert set(body) == {"error", "detail"} and body["detail"], body
    return response.status_code, body["error"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 422, "missing_text"),
        ({"text": None}, 422, "missing_text"),
        ({"text": ""}, 422, "empty_text"),
        ({"text": "   \n\t"}, 422, "empty_text"),
        ({"text": 42}, 422, "invalid_type"),
        ({"text": ["a"]}, 422, "invalid_type"),
        ({"text": "x" * 2001}, 413, "text_too_long"),
        ({"texts": []}, 422, "empty_batch"),
        ({"texts": "not a list"}, 422, "invalid_type"),
        ({"texts": ["ok", None]}, 422, "missing_text"),
        ({"texts": ["ok"] * 5}, 413, "batch_too_large"),
        ({"text": "a", "texts": ["b"]}, 422, "missing_text"),
        ({"text": "a", "colour": "red"}, 422, "unknown_field"),
        ({"text": "a", "explain": "yes"}, 422, "invalid_type"),
        ([1, 2], 422, "invalid_type"),
    ],
)
def test_bad_json_bodies(client: FlaskClient, body: object, status: int, code: str) -> None:
    assert error_of(client.post("/api/v1/predict", json=body)) == (status, code)


def test_malformed_json(client: FlaskClient) -> None:
    response = client.post("/api/v1/predict", data="{not json", content_type="application/json")
    assert error_of(response) == (400, "malformed_json")
    empty = client.post("/api/v1/predict", data="", content_type="application/json")
    assert error_of(empty) == (400, "malformed_json")


def test_invalid_utf8(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/predict", data=b'{"text": "caf\xe9"}', content_type="application/json"
    )
    assert error_of(response) == (400, "invalid_utf8")


def test_wrong_content_type(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/predict", data=json.dumps({"text": "hi"}), content_type="text/plain"
    )
    assert error_of(response) == (415, "unsupported_media_type")


def test_body_over_the_limit(client: FlaskClient) -> None:
    response = client.post("/api/v1/predict", json={"text": "y" * 9000})
    assert error_of(response) == (413, "request_entity_too_large")


def test_unknown_route_and_method(client: FlaskClient) -> None:
    assert error_of(client.get("/nope")) == (404, "not_found")
    assert error_of(client.get("/api/v1/predict")) == (405, "method_not_allowed")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"inputs": 3},
        {"dataframe_split": {"data": "x"}},
        {"dataframe_records": [1]},
        {"inputs": ["a"], "instances": ["b"]},
        {"inputs": [None]},
    ],
)
def test_invocations_bad_payloads(client: FlaskClient, payload: dict) -> None:
    status, _ = error_of(client.post("/invocations", json=payload))
    assert status == 422


def test_ops_endpoints(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json()["status"] == "ready"
    version = client.get("/version").get_json()
    assert version["model"]["version"] == "injected" and version["model"]["source"] == "injected"
    assert version["app_version"]


def test_security_headers(client: FlaskClient) -> None:
    headers = client.get("/").headers
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"

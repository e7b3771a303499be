"""Every JSON endpoint and every kind of bad input, through Flask's test client."""

from __future__ import annotations

import io
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
    assert set(body) == {"error", "detail", "error_code", "message"} and body["detail"], body
    assert body["message"] == body["detail"]  # MLflow clients read error_code + message
    return response.status_code, body["error"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 422, "missing_text"),
        ({"text": None}, 422, "invalid_type"),
        ({"text": ""}, 422, "empty_text"),
        ({"text": "   \n\t"}, 422, "empty_text"),
        ({"text": 42}, 422, "invalid_type"),
        ({"text": ["a"]}, 422, "invalid_type"),
        ({"text": "x" * 2001}, 413, "text_too_long"),
        ({"texts": []}, 422, "empty_batch"),
        ({"texts": "not a list"}, 422, "invalid_type"),
        ({"texts": ["ok", None]}, 422, "invalid_type"),
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
    assert error_of(response) == (413, "body_too_large")


def test_chunked_body_over_the_limit_is_413_too(client: FlaskClient) -> None:
    """Without Content-Length the body used to be cut at the limit and reported as bad JSON."""
    body = b'{"text": "' + b"y" * 9000 + b'"}'
    response = client.post(
        "/api/v1/predict",
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn sets for chunked bodies
    )
    assert error_of(response) == (413, "body_too_large")


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
    response = client.post("/invocations", json=payload)
    status, _ = error_of(response)
    assert status == 400  # as MLflow's scoring server: any unusable input is a 400 BAD_REQUEST
    assert response.get_json()["error_code"] == "BAD_REQUEST"


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


# --- hostile input: always a 4xx JSON naming the problem, never a 500 ----------------------
@pytest.mark.parametrize("path", ["/api/v1/predict", "/invocations"])
@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"[" * 100_000, "too_deeply_nested"),
        (b'{"a":' * 50_000, "too_deeply_nested"),
        (b'{"text": ' + b"1" * 5000 + b"}", "malformed_json"),
        (b'{"inputs": [' + b"9" * 5000 + b"]}", "malformed_json"),
        (b"\xff\xfe{}", "invalid_utf8"),
    ],
)
def test_hostile_json_is_a_4xx(small_model: Pipeline, path: str, raw: bytes, code: str) -> None:
    from imdb_sentiment.serving.http.app import create_app
    from imdb_sentiment.serving.service_settings import load_settings

    client = create_app(load_settings(max_body_bytes=1 << 20), model=small_model).test_client()
    response = client.post(path, data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.get_json()["error"] == code


def test_brackets_inside_texts_are_not_nesting(client: FlaskClient) -> None:
    texts = ["[[[[{{{{" * 10, "fine"]
    response = client.post("/api/v1/predict", json={"texts": texts})
    assert response.status_code == 200


def test_405_says_which_methods_are_allowed(client: FlaskClient) -> None:
    response = client.get("/invocations")
    assert response.status_code == 405 and "POST" in response.headers["Allow"].split(", ")
    assert sorted(client.delete("/healthz").headers["Allow"].split(", ")) == [
        "GET",
        "HEAD",
        "OPTIONS",
    ]


def test_text_of_no_known_token_says_there_is_no_evidence(client: FlaskClient) -> None:
    for text in ("\x00\x00\x00", "\u200b\u200b"):
        body = client.post("/api/v1/predict", json={"text": text}).get_json()
        assert body["evidence"] == {"tokens": 0, "known_tokens": 0}
    body = client.post("/api/v1/predict", json={"text": "great great film"}).get_json()
    assert body["evidence"]["known_tokens"] >= 2


# --- MLflow's scoring-server protocol -------------------------------------------------------
def test_ping_and_health_as_mlflow(client: FlaskClient) -> None:
    for path in ("/ping", "/health"):
        assert client.get(path).status_code == 200


def test_invocations_csv_and_params(client: FlaskClient, small_model: Pipeline) -> None:
    csv_body = f'text\n"{POSITIVE}"\n"{NEGATIVE}"\n'
    response = client.post("/invocations", data=csv_body, content_type="text/csv")
    assert response.status_code == 200, response.get_json()
    got = np.array(response.get_json()["predictions"])
    np.testing.assert_allclose(got, small_model.predict_proba([POSITIVE, NEGATIVE]), atol=1e-9)
    with_params = client.post(
        "/invocations", json={"inputs": [POSITIVE], "params": {"anything": 1}}
    )
    assert with_params.status_code == 200
    latin1 = client.post(
        "/invocations", data=b"text\nok\n", content_type="text/csv; charset=latin-1"
    )
    assert latin1.status_code == 415 and latin1.get_json()["error_code"] == "BAD_REQUEST"
    parquet = client.post(
        "/invocations", data=b"PAR1", content_type="application/vnd.apache.parquet"
    )
    assert parquet.status_code == 415


def test_csv_bad_rows_are_400(client: FlaskClient) -> None:
    for body in ("text\n", "", 'text\n"   "\n', "text\n" + "x\n" * 5):
        response = client.post("/invocations", data=body, content_type="text/csv")
        assert response.status_code in (400, 413), (body, response.get_json())


def test_not_blank_means_what_str_isspace_means_in_every_regex_engine() -> None:
    """The schema's pattern is checked by pydantic (Rust) here and by clients (ECMA, Python)."""
    import re
    import sys
    from typing import Annotated

    from pydantic import StringConstraints, TypeAdapter, ValidationError

    from imdb_sentiment.serving.scoring import NOT_BLANK

    blank = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    adapter = TypeAdapter(Annotated[str, StringConstraints(pattern=NOT_BLANK)])
    for char in blank:
        assert re.search(NOT_BLANK, char * 3) is None
        with pytest.raises(ValidationError):
            adapter.validate_python(char * 3)
    for text in ("a", "\x00", "\u200b", "\ufeff", " x "):
        assert re.search(NOT_BLANK, text) and adapter.validate_python(text) == text


@pytest.mark.parametrize("kernel", ["compiled", "python"])
def test_batches_answer_on_both_scorers(kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch routes with the compiled kernel and with the Python path that stands in for it
    (no compiler; IMDB_SENTIMENT_KERNEL=python): the same answers, every route 200."""
    from imdb_sentiment.core.config import FeatureParams
    from imdb_sentiment.runtime import scorer
    from imdb_sentiment.serving.http.app import create_app
    from imdb_sentiment.serving.service_settings import load_settings
    from tests.unit.runtime.test_kernel import model

    if kernel == "python":
        monkeypatch.setattr(scorer, "native_scorer", lambda *args: None)
    pipeline = model(FeatureParams(tokens="whitespace", ngram_range=(1, 3), max_features=None))
    client = create_app(load_settings(), model=pipeline).test_client()
    texts = [POSITIVE, NEGATIVE, "ok", "Amélie, 東京"]
    expected = pipeline.predict_proba(texts)[:, 1]
    api = client.post("/api/v1/predict", json={"texts": texts})
    mlflow = client.post("/invocations", json={"inputs": texts})
    oip = client.post(
        "/v2/models/imdb-sentiment/infer",
        json={"inputs": [{"name": "text", "shape": [4], "datatype": "BYTES", "data": texts}]},
    )
    assert [r.status_code for r in (api, mlflow, oip)] == [200, 200, 200]
    positive = [p["scores"]["positive"] for p in api.get_json()["predictions"]]
    np.testing.assert_allclose(positive, expected, atol=1e-6)
    np.testing.assert_allclose(np.array(mlflow.get_json()["predictions"])[:, 1], expected)
    np.testing.assert_allclose(oip.get_json()["outputs"][0]["data"], expected, atol=1e-6)

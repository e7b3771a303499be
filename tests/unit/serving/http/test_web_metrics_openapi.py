from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.scoring import NOT_BLANK
from imdb_sentiment.serving.service_settings import load_settings


def test_page_renders_form_and_examples(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    assert '<form method="post" action="/predict"' in html
    assert 'name="text"' in html and 'class="example"' in html
    assert "<script>" not in html  # no inline script: the CSP forbids it
    assert not re.search(r"https?://", html)  # no CDN or external asset


def test_form_prediction_shows_label_confidence_latency_cost_and_highlights(
    client: FlaskClient,
) -> None:
    html = client.post("/predict", data={"text": "Awful, boring waste of time."}).get_data(
        as_text=True
    )
    assert 'id="label">Negative<' in html
    assert re.search(r'id="confidence">\d+\.\d%<', html)
    assert re.search(r'id="latency">[\d.]+ ms<', html)
    assert re.search(r'id="cost">\$0\.\d+<', html)
    assert re.search(r'<mark class="neg l\d"[^>]*>Awful</mark>', html)


def test_user_text_is_escaped(client: FlaskClient) -> None:
    evil = "<script>alert('x')</script> wonderful brilliant film"
    html = client.post("/predict", data={"text": evil}).get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    ("data", "status"), [({}, 422), ({"text": "   "}, 422), ({"text": "z" * 2001}, 413)]
)
def test_form_errors_show_on_the_page(client: FlaskClient, data: dict, status: int) -> None:
    response = client.post("/predict", data=data)
    assert response.status_code == status
    html = response.get_data(as_text=True)
    assert 'role="alert"' in html and "Traceback" not in html


def samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").get_data(as_text=True)
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_requests_predictions_costs_and_errors(client: FlaskClient) -> None:
    client.post(
        "/api/v1/predict", json={"texts": ["Wonderful brilliant film", "Awful boring waste"]}
    )
    client.post("/api/v1/predict", json={"text": ""})
    client.post("/api/v1/predict", json={"text": "Great"})
    m = samples(client)
    count = "app_request_count_total"
    endpoint, method = ("endpoint", "/api/v1/predict"), ("method", "POST")
    assert m[(count, (endpoint, method, ("status", "200")))] == 2
    assert m[(count, (endpoint, method, ("status", "422")))] == 1  # status tells 4xx from 5xx
    assert m[("model_prediction_count_total", (("prediction", "positive"),))] == 2
    assert m[("model_prediction_count_total", (("prediction", "negative"),))] == 1
    assert (
        m[("app_request_errors_total", (("endpoint", "/api/v1/predict"), ("reason", "empty_text")))]
        == 1
    )
    latency = "app_request_latency_seconds_count"
    assert m[(latency, (endpoint, ("shape", "batch")))] == 1  # batches apart from single reviews
    assert m[(latency, (endpoint, ("shape", "single")))] == 2
    assert m[("model_info", (("name", "imdb-sentiment"), ("version", "injected")))] == 1
    assert m[("model_prediction_confidence_count", ())] == 3
    assert m[("model_input_length_chars_count", ())] == 3
    assert m[("model_unknown_token_ratio_count", ())] == 3
    assert m[("app_total_cost_usd_total", ())] > 0
    assert m[("app_cost_per_request_usd", (("endpoint", "/api/v1/predict"),))] > 0


def test_unknown_token_share_is_observed(client: FlaskClient) -> None:
    client.post("/api/v1/predict", json={"text": "zzqx wibble florp film"})
    m = samples(client)
    # 3 of 4 tokens are unknown: the observation lands in the (0.5, 0.75] bucket.
    assert m[("model_unknown_token_ratio_bucket", (("le", "0.5"),))] == 0
    assert m[("model_unknown_token_ratio_bucket", (("le", "0.75"),))] == 1


def test_each_app_has_its_own_registry(small_model) -> None:
    first = create_app(load_settings(), model=small_model).test_client()
    second = create_app(load_settings(), model=small_model).test_client()
    first.post("/api/v1/predict", json={"text": "great"})
    assert ("model_prediction_count_total", (("prediction", "positive"),)) not in samples(second)


def test_openapi_document_is_valid_and_matches_routes(app: Flask, client: FlaskClient) -> None:
    from openapi_spec_validator import validate

    spec = client.get("/openapi.json").get_json()
    validate(spec)
    # Every route the app registers, with every method, is in the document, and nothing else.
    registered = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert documented == registered
    limits = spec["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    ref = limits["schema"]["oneOf"][0]["$ref"].rsplit("/", 1)[1]
    single = spec["components"]["schemas"][ref]["properties"]["text"]
    assert single["maxLength"] == 2000 and single["pattern"] == NOT_BLANK  # the validating model


def test_responses_validate_against_the_openapi_schema(client: FlaskClient) -> None:
    import jsonschema

    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    resolver_doc = {"components": {"schemas": schemas}}
    prediction = {**schemas["Prediction"], "components": resolver_doc["components"]}
    body = client.post("/api/v1/predict", json={"text": "great", "explain": True}).get_json()
    jsonschema.validate(body, prediction)
    error = {**schemas["Error"]}
    jsonschema.validate(client.post("/api/v1/predict", json={}).get_json(), error)


def test_responses_are_exactly_the_response_models(client: FlaskClient) -> None:
    """The models the OpenAPI document is written from accept real responses, strictly (no
    field missing, none extra)."""
    from imdb_sentiment.serving.http import responses

    single = client.post("/api/v1/predict", json={"text": "great", "explain": True})
    responses.Prediction.model_validate(single.get_json())
    many = client.post("/api/v1/predict", json={"texts": ["great", "awful"]})
    responses.Predictions.model_validate(many.get_json())
    invocation = client.post("/invocations", json={"inputs": ["great"]})
    responses.Invocation.model_validate(invocation.get_json())
    for bad in (client.post("/api/v1/predict", json={}), client.get("/nope")):
        responses.Error.model_validate(bad.get_json())


def test_docs_page_serves_swagger_ui_offline(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "swagger-ui" in html and "http" not in html.replace("http-equiv", "")
    for asset in ("/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/static/docs.js"):
        assert asset in html
        response = client.get(asset)
        assert response.status_code == 200 and len(response.get_data()) > 100, asset


def test_error_page_echoes_only_an_excerpt_of_a_huge_review(small_model) -> None:
    app = create_app(load_settings(max_text_chars=2000, max_body_bytes=4 << 20), model=small_model)
    page = app.test_client().post("/predict", data={"text": "z" * 1_000_000})
    assert page.status_code == 413
    html = page.get_data(as_text=True)
    assert "z" * 200 in html and "z" * 201 not in html and len(html) < 20_000

"""The Open Inference Protocol's REST routes: names and shapes as the specification
(kserve/open-inference-protocol) writes them, the same numbers as /api/v1/predict, errors as
`{"error": …}` with a 4xx, unknown model or version a 404."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from imdb_sentiment.serving.api_errors import ApiError
from imdb_sentiment.serving.http.oip import infer_texts, wanted_outputs

TEXTS = ["A wonderful, moving film.", "Dull and far too long."]


def tensor(data: Any, shape: list[int] | None = None, datatype: str = "BYTES") -> dict[str, Any]:
    shape = shape if shape is not None else [len(data)]
    return {"inputs": [{"name": "text", "datatype": datatype, "shape": shape, "data": data}]}


def test_health_server_and_model_metadata(client: FlaskClient) -> None:
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    server = client.get("/v2").get_json()
    assert server["name"] == "imdb-sentiment" and "version" in server
    meta = client.get("/v2/models/imdb-sentiment").get_json()
    assert meta["name"] == "imdb-sentiment" and meta["versions"] == ["injected"]
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert {o["name"] for o in meta["outputs"]} == {"probability", "label", "predict_proba"}
    assert client.get("/v2/models/imdb-sentiment/versions/injected").status_code == 200
    ready = client.get("/v2/models/imdb-sentiment/versions/injected/ready")
    assert ready.get_json() == {"name": "imdb-sentiment", "ready": True}


@pytest.mark.parametrize(
    "path",
    ["/v2/models/other", "/v2/models/imdb-sentiment/versions/99", "/v2/models/other/ready",
     "/v2/models/imdb-sentiment/versions/99/ready"],
)  # fmt: skip
def test_unknown_model_or_version_is_a_404(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404 and set(response.get_json()) == {"error"}
    infer = client.post(path.removesuffix("/ready") + "/infer", json=tensor(TEXTS))
    assert infer.status_code == 404 and set(infer.get_json()) == {"error"}


def test_infer_equals_the_json_api(client: FlaskClient) -> None:
    body = {**tensor(TEXTS), "id": "req-1"}
    answer = client.post("/v2/models/imdb-sentiment/infer", json=body).get_json()
    assert answer["model_name"] == "imdb-sentiment" and answer["model_version"] == "injected"
    assert answer["id"] == "req-1"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert set(outputs) == {"probability", "label"}
    assert outputs["probability"]["datatype"] == "FP64" and outputs["probability"]["shape"] == [2]
    assert outputs["label"]["datatype"] == "BYTES"
    api = client.post("/api/v1/predict", json={"texts": TEXTS}).get_json()["predictions"]
    for i, p in enumerate(api):
        assert abs(outputs["probability"]["data"][i] - p["scores"]["positive"]) <= 1e-12
        assert outputs["label"]["data"][i] == p["label"]
    # [n, 1] and the nested row-major form; predict_proba only when asked for by name.
    nested = tensor([[t] for t in TEXTS], shape=[2, 1])
    nested["outputs"] = [{"name": "predict_proba"}]
    proba = client.post("/v2/models/imdb-sentiment/versions/injected/infer", json=nested)
    [only] = proba.get_json()["outputs"]
    assert only["name"] == "predict_proba" and only["shape"] == [2, 2]
    assert abs(only["data"][1] - outputs["probability"]["data"][0]) <= 1e-12
    assert abs(only["data"][0] + only["data"][1] - 1.0) <= 2e-6  # each rounded to 6 places


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"inputs": []}, 400),
        (tensor(TEXTS, datatype="FP32"), 400),
        (tensor(TEXTS, shape=[3]), 400),
        (tensor(TEXTS, shape=[2, 2]), 400),
        (tensor(["", "  "]), 422),
        (tensor(["x"] * 5), 413),  # the fixture's batch limit is 4
        ({**tensor(TEXTS), "outputs": [{"name": "nope"}]}, 400),
        (["not", "an", "object"], 400),
    ],
)
def test_bad_inference_requests_are_4xx_with_an_error(
    client: FlaskClient, body: Any, status: int
) -> None:
    response = client.post("/v2/models/imdb-sentiment/infer", json=body)
    assert response.status_code == status
    assert set(response.get_json()) == {"error"} and response.get_json()["error"]


def test_payload_parsing_is_pure() -> None:
    assert infer_texts(tensor(TEXTS)) == TEXTS
    assert infer_texts(tensor([[t] for t in TEXTS], shape=[2, 1])) == TEXTS
    assert wanted_outputs({}) == ("probability", "label")
    with pytest.raises(ApiError):
        infer_texts({"inputs": [{"datatype": "BYTES", "shape": [-1], "data": TEXTS}]})


def test_responses_are_what_the_openapi_document_says(client: FlaskClient) -> None:
    import jsonschema

    spec = client.get("/openapi.json").get_json()
    paths = spec["paths"]

    def check(path: str, method: str, response: Any) -> None:
        answer = paths[path][method]["responses"][str(response.status_code)]
        schema = answer["content"]["application/json"]["schema"]
        jsonschema.validate(response.get_json(), {**schema, "components": spec["components"]})

    check("/v2/health/live", "get", client.get("/v2/health/live"))
    check("/v2/health/ready", "get", client.get("/v2/health/ready"))
    check("/v2", "get", client.get("/v2"))
    check("/v2/models/{name}", "get", client.get("/v2/models/imdb-sentiment"))
    check("/v2/models/{name}/ready", "get", client.get("/v2/models/imdb-sentiment/ready"))
    body = {
        **tensor(TEXTS),
        "id": "x",
        "outputs": [{"name": n} for n in ("label", "predict_proba")],
    }
    check(
        "/v2/models/{name}/infer", "post", client.post("/v2/models/imdb-sentiment/infer", json=body)
    )
    check(
        "/v2/models/{name}/infer", "post", client.post("/v2/models/imdb-sentiment/infer", json={})
    )
    check("/v2/models/{name}", "get", client.get("/v2/models/other"))
    infer_body = paths["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    ref = infer_body["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    request_schema = {**spec["components"]["schemas"][ref], "components": spec["components"]}
    jsonschema.validate(body, request_schema)  # the document describes what clients send
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(tensor(TEXTS, datatype="FP32"), request_schema)


def test_fields_beyond_the_specification_are_ignored(client: FlaskClient) -> None:
    """The kserve SDK's REST client sends `model_name` in the body; OIP servers ignore extras."""
    body = {**tensor(TEXTS), "model_name": "imdb-sentiment", "id": "k"}
    response = client.post("/v2/models/imdb-sentiment/infer", json=body)
    assert response.status_code == 200 and response.get_json()["id"] == "k"


def test_readiness_is_one_question_for_every_probe(tmp_path: Path, small_model: Any) -> None:
    """KServe's probe (/v2/health/ready) asks what Kubernetes' (/readyz) asks: a model *and* a
    store schema this release can use — a pod on an unmigrated store is not ready for either."""
    import time

    from imdb_sentiment.serving.http.app import create_app
    from imdb_sentiment.serving.service_settings import load_settings
    from imdb_sentiment.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'store.db'}"
    settings = load_settings(database_url=url, database_migrate="off", reload_interval=0)
    client = create_app(settings, model=small_model).test_client()
    deadline = time.monotonic() + 10
    while client.get("/readyz").status_code == 200 or "not checked" in client.get(
            "/readyz").get_json()["reason"]:  # fmt: skip
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/health/ready").get_json() == {"ready": False}
    upgrade(url)
    ctx = client.application.extensions["imdb_sentiment"]
    ctx.prediction_store.check_schema()
    assert client.get("/readyz").status_code == 200
    assert client.get("/v2/health/ready").get_json() == {"ready": True}

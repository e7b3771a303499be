"""The OpenAPI 3 document of every route the app serves (at /openapi.json; a test holds it to
the app's route table): the JSON API, MLflow's scoring protocol, the Open Inference Protocol, the
web page and the operational routes.

Request bodies are not written here: they are the JSON Schema of the pydantic models in
`serving.http.schemas`, which also validate every request.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from imdb_sentiment import __version__
from imdb_sentiment.serving.http.responses import RESPONSES
from imdb_sentiment.serving.http.schemas import Schemas
from imdb_sentiment.serving.service_settings import Settings


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ERROR = _ref("Error")


_API_ERRORS = {
    400: "Malformed JSON, invalid UTF-8, too deeply nested (on /invocations: any bad input)",
    401: "API_TOKENS_FILE is set and the bearer token is missing or wrong",
    403: "Writes are off: no API_TOKENS_FILE (and no ALLOW_ANONYMOUS_WRITES=true)",
    404: "No prediction with this request_id (and item), or feedback is off",
    409: "This prediction (or text) already has a label",
    413: "Body, text or batch too large",
    415: "Body is not application/json",
    422: "Invalid field",
    503: "No model loaded; for feedback: the database cannot take it now, or the prediction is "
    "not stored yet (retry)",
}
_OIP_ERRORS = {
    400: "Malformed request: not the protocol's shape, or shape and data disagree",
    401: "API_TOKENS_FOR=all and the bearer token is missing or wrong",
    404: "No model of this name (or version)",
    413: "Body, text or batch too large",
    415: "Body is not JSON",
    422: "A text with no character",
    503: "No model loaded",
}


def _errors(
    texts: dict[int, str], schema: dict[str, Any], codes: tuple[int, ...]
) -> dict[str, Any]:
    """The error answers `codes`, each described by `texts`, with its body's schema."""
    return {
        str(c): {"description": texts[c], "content": {"application/json": {"schema": schema}}}
        for c in codes
    }


def _error_responses(*codes: int) -> dict[str, Any]:
    return _errors(_API_ERRORS, _ERROR, codes)


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _html(summary: str, *codes: int) -> dict[str, Any]:
    html = {"text/html": {"schema": {"type": "string"}}}
    answers = {str(c): {"description": "The page", "content": html} for c in (200, *codes)}
    return {"summary": summary, "responses": answers}


# Optional: the service asks for a token only when API_TOKENS_FILE is set (see API_TOKENS_FOR).
_BEARER: list[dict[str, list[str]]] = [{}, {"bearer": []}]


def _oip_errors(*codes: int) -> dict[str, Any]:
    return _errors(_OIP_ERRORS, _ref("OipError"), codes)


def _oip_model_paths(model_name: str, infer_body: dict[str, Any]) -> dict[str, Any]:
    """/v2/models/{name}[/versions/{version}][/ready|/infer]: the same three routes with and
    without a version."""
    name = {"name": "name", "in": "path", "required": True,
            "schema": {"type": "string", "enum": [model_name]}}  # fmt: skip
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    paths: dict[str, Any] = {}
    for prefix, params in (
        ("/v2/models/{name}", [name]),
        ("/v2/models/{name}/versions/{version}", [name, version]),
    ):
        paths[prefix] = {"get": {
            "summary": "OIP model metadata",
            "parameters": params,
            "responses": {"200": {"description": "Metadata",
                                  "content": _json(_ref("OipModelMetadata"))},
                          **_oip_errors(404, 503)},
        }}  # fmt: skip
        paths[f"{prefix}/ready"] = {"get": {
            "summary": "OIP model readiness",
            "parameters": params,
            "responses": {"200": {"description": "Ready", "content": _json(_ref("OipModelReady"))},
                          **_oip_errors(404, 503)},
        }}  # fmt: skip
        paths[f"{prefix}/infer"] = {"post": {
            "summary": "OIP inference: one BYTES tensor of texts ([n] or [n, 1]); outputs "
            "probability (P(positive)), label, and predict_proba when asked for",
            "parameters": params,
            "security": _BEARER,
            "requestBody": {"required": True, "content": _json(infer_body)},
            "responses": {"200": {"description": "Output tensors",
                                  "content": _json(_ref("OipInferResponse"))},
                          **_oip_errors(400, 401, 404, 413, 415, 422, 503)},
        }}  # fmt: skip
    return paths


def _oip_paths(model_name: str, infer_body: dict[str, Any]) -> dict[str, Any]:
    return {
        "/v2/health/live": {"get": {
            "summary": "OIP server liveness",
            "responses": {"200": {"description": "Live", "content": _json(_ref("OipLive"))}},
        }},
        "/v2/health/ready": {"get": {
            "summary": "OIP server readiness (a model is loaded)",
            "responses": {"200": {"description": "Ready", "content": _json(_ref("OipReady"))},
                          "503": {"description": "Not ready", "content": _json(_ref("OipReady"))}},
        }},
        "/v2": {"get": {
            "summary": "OIP server metadata",
            "responses": {"200": {"description": "Metadata",
                                  "content": _json(_ref("OipServerMetadata"))}},
        }},
        **_oip_model_paths(model_name, infer_body),
    }  # fmt: skip


def _web_paths(schemas: Schemas) -> dict[str, Any]:
    text = schemas.text.json_schema()  # the form's text is checked as the API's texts are
    form = {
        "application/x-www-form-urlencoded": {
            "schema": {"type": "object", "properties": {"text": text}, "required": ["text"]}
        }
    }
    asset = {
        "200": {"description": "The file", "content": {"*/*": {"schema": {"type": "string"}}}},
        "404": {"description": "No such file", "content": _json(_ERROR)},
    }
    filename = {"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/": {"get": _html("The web page: a form and examples")},
        "/predict": {"post": {
            **_html("The web page's form: the page with the result, or with the problem",
                    400, 401, 413, 415, 422, 503),
            "requestBody": {"required": True, "content": form},
        }},
        "/static/{filename}": {"get": {"summary": "The page's assets", "parameters": [filename],
                                       "responses": asset}},
        "/docs": {"get": _html("This document, rendered")},
        "/docs/{name}": {"get": {"summary": "The rendered document's assets",
                                 "parameters": [name], "responses": asset}},
        "/openapi.json": {"get": {"summary": "This document",
                                  "responses": {"200": {"description": "OpenAPI 3.1",
                                                        "content": _json({"type": "object"})}}}},
    }  # fmt: skip


def _models(schemas: Schemas) -> tuple[dict[str, Any], ...]:
    """(predict, invocations, feedback and OIP inference bodies, component schemas) from the
    pydantic models."""
    requests = [
        schemas.single, schemas.batch, *schemas.feedback, *schemas.invocation.values(),
        schemas.oip_infer,
    ]  # fmt: skip
    refs, defs = models_json_schema(
        [*((m, "validation") for m in requests), *((m, "serialization") for m in RESPONSES)],
        ref_template="#/components/schemas/{model}",
    )
    ref = {model: refs[(model, "validation")] for model in requests}
    predict = {"oneOf": [ref[schemas.single], ref[schemas.batch]]}
    invocation = {"oneOf": [ref[m] for m in schemas.invocation.values()]}
    feedback = {"oneOf": [ref[m] for m in schemas.feedback]}
    return predict, invocation, feedback, ref[schemas.oip_infer], defs.get("$defs", {})


def document(settings: Settings, schemas: Schemas) -> dict[str, Any]:
    predict_body, invocation_body, feedback_body, infer_body, components = _models(schemas)
    errors = _error_responses(400, 401, 413, 415, 422, 503)
    invocation_errors = _error_responses(400, 401, 413, 415, 503)
    return {
        "openapi": "3.1.0",
        "info": {"title": "IMDB sentiment API", "version": __version__},
        "paths": {
            "/api/v1/predict": {
                "post": {
                    "summary": "Sentiment of one review ('text') or a batch ('texts')",
                    "security": _BEARER,
                    "requestBody": {"required": True, "content": _json(predict_body)},
                    "responses": {
                        "200": {
                            "description": "Prediction(s)",
                            "content": _json({"oneOf": [_ref("Prediction"), _ref("Predictions")]}),
                        },
                        **errors,
                    },
                }
            },
            "/api/v1/feedback": {
                "post": {
                    "summary": "The true label of an earlier prediction (by request_id) or a text",
                    "security": _BEARER,
                    "requestBody": {"required": True, "content": _json(feedback_body)},
                    "responses": {
                        "201": {"description": "Recorded", "content": _json(_ref("FeedbackAck"))},
                        **_error_responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
                    },
                }
            },
            "/invocations": {
                "post": {
                    "summary": "MLflow scoring protocol: dataframe_split, dataframe_records, "
                    "inputs or instances",
                    "description": "`text/csv`: a header row, then one review per row (the "
                    "column `text`, else the first column), as `mlflow models serve` reads it.",
                    "security": _BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {
                            **_json(invocation_body),
                            # JSON Schema cannot say which strings are such CSV: a string.
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "[[P(negative), P(positive)], ...]",
                            "content": _json(_ref("Invocation")),
                        },
                        **invocation_errors,
                    },
                }
            },
            "/ping": {
                "get": {
                    "summary": "MLflow scoring-server health check: 200 once a model is loaded",
                    "responses": {"200": {"description": "Ready"}, **_error_responses(503)},
                }
            },
            "/health": {
                "get": {
                    "summary": "Same as /ping",
                    "responses": {"200": {"description": "Ready"}, **_error_responses(503)},
                }
            },
            "/healthz": {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}}
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness (model loaded)",
                    "responses": {"200": {"description": "Ready"}, **_error_responses(503)},
                }
            },
            "/version": {
                "get": {
                    "summary": "Model and app version",
                    "responses": {
                        "200": {"description": "Versions", "content": _json({"type": "object"})}
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            **_oip_paths(settings.model.model_name, infer_body),
            **_web_paths(schemas),
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token whose SHA-256 digest is in API_TOKENS_FILE "
                    "(`imdb-sentiment token new`); asked for only when that is set: on "
                    "/api/v1/feedback, and on the prediction routes too with API_TOKENS_FOR=all.",
                }
            },
        },
    }

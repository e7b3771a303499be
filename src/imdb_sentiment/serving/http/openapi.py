"""The OpenAPI 3 document for the JSON API (served at /openapi.json and checked by tests).

Request bodies are not written here: they are the JSON Schema of the pydantic models in
`serving.http.schemas`, which also validate every request.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from imdb_sentiment import __version__
from imdb_sentiment.config import Settings
from imdb_sentiment.serving.http.schemas import RESPONSES, Schemas


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ERROR = _ref("Error")


def _error_responses(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON, invalid UTF-8, too deeply nested (on /invocations: any bad input)",
        404: "No prediction with this request_id (and item), or feedback is off",
        409: "This prediction (or text) already has a label",
        413: "Body, text or batch too large",
        415: "Body is not application/json",
        422: "Invalid field",
        503: "No model loaded",
    }
    return {
        str(c): {"description": text[c], "content": {"application/json": {"schema": _ERROR}}}
        for c in codes
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _models(
    schemas: Schemas,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(predict, invocations and feedback bodies, component schemas) from the pydantic models."""
    requests = [schemas.single, schemas.batch, *schemas.feedback, *schemas.invocation.values()]
    refs, defs = models_json_schema(
        [*((m, "validation") for m in requests), *((m, "serialization") for m in RESPONSES)],
        ref_template="#/components/schemas/{model}",
    )
    ref = {model: refs[(model, "validation")] for model in requests}
    predict = {"oneOf": [ref[schemas.single], ref[schemas.batch]]}
    invocation = {"oneOf": [ref[m] for m in schemas.invocation.values()]}
    feedback = {"oneOf": [ref[m] for m in schemas.feedback]}
    return predict, invocation, feedback, defs.get("$defs", {})


def document(settings: Settings, schemas: Schemas) -> dict[str, Any]:
    predict_body, invocation_body, feedback_body, components = _models(schemas)
    errors = _error_responses(400, 413, 415, 422, 503)
    invocation_errors = _error_responses(400, 413, 415, 503)
    return {
        "openapi": "3.1.0",
        "info": {"title": "IMDB sentiment API", "version": __version__},
        "paths": {
            "/api/v1/predict": {
                "post": {
                    "summary": "Sentiment of one review ('text') or a batch ('texts')",
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
                    "requestBody": {"required": True, "content": _json(feedback_body)},
                    "responses": {
                        "201": {"description": "Recorded", "content": _json(_ref("FeedbackAck"))},
                        **_error_responses(400, 404, 409, 413, 415, 422, 503),
                    },
                }
            },
            "/invocations": {
                "post": {
                    "summary": "MLflow scoring protocol: dataframe_split, dataframe_records, "
                    "inputs or instances",
                    # text/csv is accepted too (a header row, then one review per row: column
                    # `text`, else the first), as by MLflow's server; JSON Schema cannot say
                    # which strings are such CSV, so it is described, not schema'd.
                    "description": "Also accepts `Content-Type: text/csv`: a header row, then "
                    "one review per row (column `text`, else the first column).",
                    "requestBody": {"required": True, "content": _json(invocation_body)},
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
        },
        "components": {"schemas": components},
    }

"""The OpenAPI 3 document for the JSON API (served at /openapi.json and checked by tests)."""

from __future__ import annotations

from typing import Any

from imdb_sentiment import __version__
from imdb_sentiment.config import Settings

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error_responses(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON or invalid UTF-8",
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


def document(settings: Settings) -> dict[str, Any]:
    text = {"type": "string", "minLength": 1, "maxLength": settings.max_text_chars}
    prediction = {
        "type": "object",
        "required": ["label", "probability", "scores", "model"],
        "properties": {
            "label": {"type": "string", "enum": ["positive", "negative"]},
            "probability": {
                "type": "number",
                "minimum": 0.5,
                "maximum": 1,
                "description": "Probability of the predicted label",
            },
            "scores": {
                "type": "object",
                "required": ["positive", "negative"],
                "properties": {"positive": {"type": "number"}, "negative": {"type": "number"}},
            },
            "model": {"$ref": "#/components/schemas/ModelRef"},
            "explanation": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["term", "weight", "direction"],
                    "properties": {
                        "term": {"type": "string"},
                        "weight": {"type": "number"},
                        "direction": {"type": "string", "enum": ["positive", "negative"]},
                    },
                },
            },
        },
    }
    errors = _error_responses(400, 413, 415, 422, 503)
    return {
        "openapi": "3.0.3",
        "info": {"title": "IMDB sentiment API", "version": __version__},
        "paths": {
            "/api/v1/predict": {
                "post": {
                    "summary": "Sentiment of one review ('text') or a batch ('texts')",
                    "requestBody": {
                        "required": True,
                        "content": _json(
                            {
                                "oneOf": [
                                    {
                                        "type": "object",
                                        "required": ["text"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "text": text,
                                            "explain": {"type": "boolean"},
                                        },
                                    },
                                    {
                                        "type": "object",
                                        "required": ["texts"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "texts": {
                                                "type": "array",
                                                "items": text,
                                                "minItems": 1,
                                                "maxItems": settings.max_batch_size,
                                            },
                                            "explain": {"type": "boolean"},
                                        },
                                    },
                                ]
                            }
                        ),
                    },
                    "responses": {
                        "200": {
                            "description": "Prediction(s)",
                            "content": _json(
                                {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Prediction"},
                                        {
                                            "type": "object",
                                            "required": ["predictions"],
                                            "properties": {
                                                "predictions": {
                                                    "type": "array",
                                                    "items": {
                                                        "$ref": "#/components/schemas/Prediction"
                                                    },
                                                }
                                            },
                                        },
                                    ]
                                }
                            ),
                        },
                        **errors,
                    },
                }
            },
            "/invocations": {
                "post": {
                    "summary": "MLflow scoring protocol: dataframe_split, dataframe_records, "
                    "inputs or instances",
                    "requestBody": {"required": True, "content": _json({"type": "object"})},
                    "responses": {
                        "200": {
                            "description": "[[P(negative), P(positive)], ...]",
                            "content": _json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "predictions": {
                                            "type": "array",
                                            "items": {"type": "array", "items": {"type": "number"}},
                                        }
                                    },
                                }
                            ),
                        },
                        **errors,
                    },
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
        "components": {
            "schemas": {
                "Prediction": prediction,
                "ModelRef": {
                    "type": "object",
                    "required": ["name", "version"],
                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                },
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                },
            }
        },
    }

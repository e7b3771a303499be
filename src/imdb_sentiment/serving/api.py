"""JSON endpoints: /api/v1/predict and MLflow's /invocations scoring protocol."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from imdb_sentiment.serving.errors import ApiError, check_batch, check_text, read_json
from imdb_sentiment.serving.predict import predict, require_model

bp = Blueprint("api", __name__)


def _ctx() -> Any:
    return current_app.extensions["imdb_sentiment"]


@bp.post("/api/v1/predict")
def predict_json() -> ResponseReturnValue:
    ctx = _ctx()
    settings = ctx.settings
    body = read_json(request)
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_type", "body must be a JSON object with 'text' or 'texts'")
    unknown = set(body) - {"text", "texts", "explain"}
    if unknown:
        raise ApiError(422, "unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    if ("text" in body) == ("texts" in body):
        raise ApiError(422, "missing_text", "send exactly one of 'text' (a string) or 'texts'")
    explain = body.get("explain", False)
    if not isinstance(explain, bool):
        raise ApiError(422, "invalid_type", "'explain' must be true or false")
    model = require_model(ctx.store)
    top_k = settings.explain_top_k if explain else 0
    if "text" in body:
        text = check_text(body["text"], settings.max_text_chars)
        (result,) = predict(model, [text], ctx.metrics, top_k)
        return jsonify(result.as_json(model, explain))
    texts = check_batch(body["texts"], settings.max_text_chars, settings.max_batch_size)
    results = predict(model, texts, ctx.metrics, top_k)
    return jsonify({"predictions": [r.as_json(model, explain) for r in results]})


def _texts_from_mlflow(body: Any) -> Any:
    """Pull the texts out of any of MLflow's scoring-protocol payload shapes."""
    if not isinstance(body, dict) or len(body.keys() & _MLFLOW_KEYS) != 1:
        raise ApiError(
            422,
            "invalid_payload",
            "send exactly one of dataframe_split, dataframe_records, inputs or instances",
        )
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise ApiError(422, "invalid_payload", "dataframe_split needs 'data' (a list of rows)")
        column = _column_index(split.get("columns"))
        return [_cell(row, column) for row in split["data"]]
    if "dataframe_records" in body:
        records = body["dataframe_records"]
        if not isinstance(records, list):
            raise ApiError(422, "invalid_payload", "dataframe_records must be a list of objects")
        return [_record_text(r) for r in records]
    values = body.get("inputs", body.get("instances"))
    if isinstance(values, dict) and len(values) == 1:
        values = next(iter(values.values()))
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        raise ApiError(422, "invalid_payload", "inputs/instances must be a list of texts")
    return [_instance_text(v) for v in values]


def _instance_text(value: Any) -> Any:
    """An instance is a text, a one-element row ["text"], or a record {"text": ...}."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    if isinstance(value, dict):
        return _record_text(value)
    return value


_MLFLOW_KEYS = {"dataframe_split", "dataframe_records", "inputs", "instances"}


def _column_index(columns: Any) -> int:
    if columns is None:
        return 0
    if not isinstance(columns, list) or not columns:
        raise ApiError(422, "invalid_payload", "dataframe_split 'columns' must be a list")
    return columns.index("text") if "text" in columns else 0


def _cell(row: Any, column: int) -> Any:
    if isinstance(row, list):
        return row[column] if len(row) > column else None
    return row


def _record_text(record: Any) -> Any:
    if not isinstance(record, dict) or not record:
        raise ApiError(422, "invalid_payload", "each record must be an object holding the text")
    return record.get("text", next(iter(record.values())))


@bp.post("/invocations")
def invocations() -> ResponseReturnValue:
    ctx = _ctx()
    texts = check_batch(
        _texts_from_mlflow(read_json(request)),
        ctx.settings.max_text_chars,
        ctx.settings.max_batch_size,
    )
    model = require_model(ctx.store)
    results = predict(model, texts, ctx.metrics)
    # Same shape as `mlflow models serve` for this model (predict_proba): [[P(neg), P(pos)], …]
    return jsonify(
        {"predictions": [[1.0 - r.score.probability, r.score.probability] for r in results]}
    )

"""JSON endpoints: /api/v1/predict, /api/v1/feedback, and MLflow's scoring protocol
(/invocations, /ping, /health) so that any client written for `mlflow models serve` works
unchanged.

Request bodies are validated by `serving.http.schemas`, the same definitions the OpenAPI document is
written from. On /invocations, input errors are 400 as on MLflow's server (422 elsewhere).
"""

from __future__ import annotations

import logging

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from imdb_sentiment.core.evidence import outcome
from imdb_sentiment.serving.api_errors import ApiError
from imdb_sentiment.serving.http.context import predict, schemas, service
from imdb_sentiment.serving.http.schemas import decode_utf8, parse_json, read_body
from imdb_sentiment.serving.scoring import Prediction
from imdb_sentiment.store.store_errors import (
    DuplicateFeedbackError,
    PendingPredictionError,
    StoreUnavailableError,
    UnknownPredictionError,
)

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)

INVOCATION_TYPES = ("application/json", "text/csv")


@bp.post("/api/v1/predict")
def predict_json() -> ResponseReturnValue:
    ctx = service()
    ctx.authorize(request.headers.get("Authorization"), "predict")
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    body = parse_json(read_body(request, ctx.settings.service.max_body_bytes))
    texts, explain, single = schemas().predict_request(body)
    model = ctx.served_model()
    top_k = ctx.settings.service.explain_top_k if explain else 0
    results = predict(model, texts, top_k)
    if single:
        return jsonify(results[0].as_json(model, explain))
    return jsonify({"predictions": [r.as_json(model, explain) for r in results]})


@bp.post("/invocations")
def invocations() -> ResponseReturnValue:
    ctx = service()
    ctx.authorize(request.headers.get("Authorization"), "predict")
    g.mlflow_protocol = True  # errors as MLflow's scoring server reports them (app.py)
    if request.mimetype not in INVOCATION_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"supported content types: {', '.join(INVOCATION_TYPES)}; got {request.mimetype!r}",
        )
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset != "utf-8":
        raise ApiError(415, "unsupported_media_type", "the scoring server only supports UTF-8")
    raw = read_body(request, ctx.settings.service.max_body_bytes)
    if request.mimetype == "text/csv":
        texts = schemas().csv_texts(decode_utf8(raw))
    else:
        texts = schemas().invocation_texts(parse_json(raw))
    model = ctx.served_model()
    results = predict(model, texts)
    # Same shape as `mlflow models serve` for this model (predict_proba): [[P(neg), P(pos)], …]
    return jsonify(
        {"predictions": [[1.0 - r.score.p_positive, r.score.p_positive] for r in results]}
    )


@bp.get("/ping")
@bp.get("/health")
def ping() -> ResponseReturnValue:
    """MLflow's health check (ScoringServerClient.wait_server_ready): 200 once a model is
    loaded. MLflow's server answers 404 without a model; 503 says the same more precisely."""
    if service().model.current is None:
        return jsonify({"status": "not ready"}), 503
    return "\n", 200, {"Content-Type": "application/json"}


@bp.post("/api/v1/feedback")
def feedback() -> ResponseReturnValue:
    """Record the true label of a prediction; 201 with what the model had said."""
    ctx = service()
    ctx.authorize(request.headers.get("Authorization"), "feedback")
    if ctx.prediction_store is None:
        raise ApiError(404, "feedback_disabled", "feedback is off on this server (DATABASE_URL)")
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    body = parse_json(read_body(request, ctx.settings.service.max_body_bytes))
    request_id, item, text, label = schemas().feedback_request(body)
    try:
        if text is not None:  # scored now, by the current model, and stored with its label
            model = ctx.served_model()
            scored = Prediction(text, model.scorer.score(text))
            record = scored.record(model, g.request_id, keep_text=ctx.prediction_store.keep_text,
                                   client_request_id=g.client_request_id,
                                   shadow=ctx.scoring.shadow_one(model, text))  # fmt: skip
            labelled = ctx.prediction_store.label(record, label, text=text)
        else:
            assert request_id is not None
            store = ctx.prediction_store
            labelled = store.label(store.lookup(request_id, item), label)
    except PendingPredictionError:
        raise ApiError(
            503,
            "prediction_pending",
            f"the prediction {request_id!r} is not stored yet: retry in a few seconds",
            headers={"Retry-After": "5"},
        ) from None
    except UnknownPredictionError:
        raise ApiError(
            404, "unknown_prediction", f"no prediction with request_id {request_id!r}, item {item}"
        ) from None
    except DuplicateFeedbackError:
        what = "this text" if text is not None else f"request_id {request_id!r}, item {item}"
        raise ApiError(409, "duplicate_feedback", f"{what} already has a label") from None
    except StoreUnavailableError as exc:
        log.warning("feedback store unavailable: %s", exc)
        raise ApiError(503, "feedback_unavailable", "feedback cannot be stored right now") from None
    p = labelled.prediction
    version = p.model_version or "unknown"
    ctx.metrics.feedback.labels(ctx.settings.model.model_name, version, labelled.outcome).inc()
    if p.shadow_label is not None and p.shadow_version is not None:  # a pair of answers
        pair = outcome(p.label, p.shadow_label, labelled.actual)
        ctx.metrics.shadow_pairs.labels(version, p.shadow_version, pair).inc()
    ack = {
        "request_id": p.request_id,
        "item": p.item,
        "label": labelled.actual,
        "predicted": p.label,
        "correct": labelled.correct,
        "model": {"name": ctx.settings.model.model_name, "version": version},
    }
    return jsonify(ack), 201

"""Operational endpoints: health, readiness, version, OpenAPI, metrics."""

from __future__ import annotations

import socket
import sqlite3

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from imdb_sentiment import __version__
from imdb_sentiment.serving.http.context import schemas, service
from imdb_sentiment.serving.http.openapi import document
from imdb_sentiment.store.database import PredictionStore

bp = Blueprint("ops", __name__)
PROBE_STATE_AGE_S = 1.0  # readiness is asked every few seconds: a second-old spool state will do


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    ctx = service()
    # No model, or a schema this release cannot use (not migrated yet, or changed
    # incompatibly): no traffic until that changes; then ready without a restart. The
    # reason's details (URLs, paths, errors) are in the log, not here.
    unready = ctx.unready_reason()
    if unready is not None:
        return jsonify({"status": "not ready", "reason": unready}), 503
    model = ctx.model.current
    assert model is not None
    store = ctx.prediction_store
    # The gRPC front (GRPC_PORT) is part of the pod: no traffic before it takes connections.
    if ctx.settings.service.grpc_port and not listening(ctx.settings.service.grpc_port):
        return jsonify({"status": "not ready", "reason": "the gRPC front is not up yet"}), 503
    body = {"status": "ready", "model": {"name": model.name, "version": model.version}}
    if store is not None:  # the store's health: a database away is not a reason to leave
        body["store"] = store_health(store)
    return jsonify(body)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def store_health(records: PredictionStore) -> dict[str, object]:
    schema = records.schema
    health: dict[str, object] = {"schema": schema.status if schema else "unknown"}
    if records.spool is not None:
        try:
            health["spool"] = records.spool.state(max_age_s=PROBE_STATE_AGE_S).as_json()
        except (sqlite3.Error, OSError):
            health["spool"] = "unreadable"
    return health


@bp.get("/version")
def version() -> ResponseReturnValue:
    ctx = service()
    model = ctx.model.current
    shadow = ctx.shadow_model.current if ctx.shadow_model is not None else None
    body = {
        "app_version": __version__,
        "model": None
        if model is None
        else {
            "name": model.name,
            "version": model.version,
            "run_id": model.run_id,
            "source": model.source,  # "registry", "cache" (registry unreachable) or "injected"
            "alias": ctx.settings.model.model_alias,
            "loaded_at": model.loaded_at,
            # P(positive) from which it labels positive: the `probability` of a label is at
            # least min(threshold, 1 - threshold).
            "threshold": model.scorer.threshold,
        },
        # "compiled": the C kernel scores batches (runtime.kernel); "python": it is absent,
        # or this model's options are not ones it reproduces.
        "scorer_kernel": "compiled" if model is not None and model.scorer.native else "python",
        # The candidate scored in the shadow (SHADOW_SAMPLE of requests), if any.
        "shadow": None
        if shadow is None
        else {"version": shadow.version, "sample": ctx.settings.service.shadow_sample},
    }
    return jsonify(body)


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(document(service().settings, schemas()))


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    payload, content_type = service().metrics.render()
    return Response(payload, content_type=content_type)

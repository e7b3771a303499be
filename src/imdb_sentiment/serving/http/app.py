"""Flask app factory: `create_app(settings, model=None)`, the HTTP front over the scoring
service (`serving.scoring`): its blueprints, the request hooks (ids, security headers, request
metrics) and the error handlers that turn an `ApiError` into JSON. Nothing is loaded at import.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from imdb_sentiment.serving.api_errors import ApiError
from imdb_sentiment.serving.http import api, docs, oip, ops, web
from imdb_sentiment.serving.http.context import install
from imdb_sentiment.serving.http.json_provider import OrjsonProvider
from imdb_sentiment.serving.http.schemas import Schemas
from imdb_sentiment.serving.logs import (
    CLIENT_REQUEST_ID,
    REQUEST_ID,
    REQUEST_ID_HEADER,
    client_request_id,
    new_request_id,
)
from imdb_sentiment.serving.metrics import Metrics
from imdb_sentiment.serving.scoring import build_service
from imdb_sentiment.serving.service_settings import Settings, load_settings

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI sets inline styles; scripts stay same-origin only, there as everywhere.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
UNTIMED = {"ops.metrics", "static", "docs.asset"}
# MLflow's error codes (mlflow.protos.databricks_pb2) by HTTP status.
MLFLOW_CODES = {503: "TEMPORARILY_UNAVAILABLE", 500: "INTERNAL_ERROR", 404: "ENDPOINT_NOT_FOUND"}


def error_body(status: int, code: str, detail: str) -> dict[str, str]:
    """Every error's JSON: {"error": code, "detail": message}, plus MLflow's {"error_code",
    "message"} so clients of MLflow's scoring server understand it too."""
    mlflow_code = MLFLOW_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
    return {"error": code, "detail": detail, "error_code": mlflow_code, "message": detail}


def create_app(
    settings: Settings | None = None,
    model: Pipeline | None = None,
    shadow_model: Pipeline | None = None,
    migrate: bool = True,
) -> Flask:
    """The HTTP front over a scoring service built for `settings` (`build_service`: `model`
    and `shadow_model` are for tests; `migrate`: False in a server's workers)."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    # One byte over the limit gets through Werkzeug, so read_body can tell "too large" apart from
    # "exactly at the limit" for chunked bodies too (Werkzeug cuts those silently).
    app.config["MAX_CONTENT_LENGTH"] = settings.service.max_body_bytes + 1
    scoring_service = build_service(settings, model, shadow_model, migrate=migrate)
    install(app, scoring_service, Schemas.build(settings))
    for blueprint in (web.bp, api.bp, oip.bp, ops.bp, docs.bp):
        app.register_blueprint(blueprint)
    _install_hooks(app, settings, scoring_service.metrics)
    return app


def _endpoint() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def _install_hooks(app: Flask, settings: Settings, metrics: Metrics) -> None:
    # Each hook resolves Flask's `request` and `g` proxies once: every attribute read through a
    # proxy looks up the context again, and these hooks run on every request.
    cost_per_second = settings.service.instance_cost_per_hour / 3600
    request_id_key = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")

    @app.before_request
    def _start_request() -> None:
        state = g._get_current_object()
        state.started = time.perf_counter()
        # This server's id keys the request's records; the caller's is only correlated.
        state.request_id = new_request_id()
        state.client_request_id = client_request_id(request.environ.get(request_id_key))
        state.request_id_token = REQUEST_ID.set(state.request_id)  # for every log line of it
        state.client_id_token = CLIENT_REQUEST_ID.set(state.client_request_id)

    @app.teardown_request
    def _end_request(_: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            REQUEST_ID.reset(token)
        client = g.pop("client_id_token", None)
        if client is not None:
            CLIENT_REQUEST_ID.reset(client)

    @app.after_request
    def _finish(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]
        state = g._get_current_object()
        headers = response.headers
        headers["Content-Security-Policy"] = DOCS_CSP if req.blueprint == "docs" else CSP
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        headers["Referrer-Policy"] = "no-referrer"
        request_id = getattr(state, "request_id", None)
        if request_id is not None:
            headers[REQUEST_ID_HEADER] = request_id
        started = getattr(state, "started", None)
        if started is None or req.endpoint in UNTIMED:
            return response
        rule = req.url_rule
        elapsed = time.perf_counter() - started
        metrics.observe_request(
            req.method,
            rule.rule if rule is not None else "unmatched",
            str(response.status_code),
            "batch" if getattr(state, "batch", False) else "single",
            elapsed,
            elapsed * cost_per_second,
        )
        return response

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> ResponseReturnValue:
        metrics.errors.labels(endpoint=_endpoint(), reason=error.code).inc()
        # MLflow's scoring server answers 400 to any input it cannot use.
        status = 400 if g.get("mlflow_protocol") and error.status == 422 else error.status
        if g.get("oip"):  # the Open Inference Protocol's error shape
            return jsonify({"error": error.detail}), status, error.headers
        return jsonify(error_body(status, error.code, error.detail)), status, error.headers

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> ResponseReturnValue:
        code = (error.name or "error").lower().replace(" ", "_")
        status = error.code or 500
        metrics.errors.labels(endpoint=_endpoint(), reason=code).inc()
        # Werkzeug's own headers matter: `Allow` on 405 above all.
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        detail = error.description or error.name or code
        return jsonify(error_body(status, code, detail)), status, headers

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> ResponseReturnValue:
        log.exception("unhandled error")  # a bug: logged with traceback, never shown to users
        metrics.errors.labels(endpoint=_endpoint(), reason="internal_error").inc()
        return jsonify(error_body(500, "internal_error", "unexpected server error")), 500

"""Flask app factory: `create_app(settings, model=None)`.

Nothing is loaded at import. The factory wires settings, a per-app metrics registry and the
model store; with `model` given (tests) it serves that pipeline and never touches a registry.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import disable_created_metrics
from werkzeug.exceptions import HTTPException

from imdb_sentiment.config import Settings, load_settings
from imdb_sentiment.serving import api, ops, web
from imdb_sentiment.serving.errors import ApiError
from imdb_sentiment.serving.metrics import Metrics
from imdb_sentiment.serving.model_store import ModelStore

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
UNTIMED = {"ops.metrics", "static"}


@dataclass
class ServiceContext:
    settings: Settings
    metrics: Metrics
    store: ModelStore


def create_app(settings: Settings | None = None, model: Pipeline | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    disable_created_metrics()  # *_created series only add noise for these dashboards
    metrics = Metrics()
    store = ModelStore(settings, metrics)
    app.extensions["imdb_sentiment"] = ServiceContext(settings, metrics, store)
    for blueprint in (web.bp, api.bp, ops.bp):
        app.register_blueprint(blueprint)
    _install_hooks(app, settings, metrics)
    if model is not None:
        store.inject(model)
    else:
        _start_model(settings, store)
    return app


def _start_model(settings: Settings, store: ModelStore) -> None:
    if settings.model_sync == "inline":  # this process talks to the registry itself
        from imdb_sentiment.serving.sync import quiet_http_defaults
        from imdb_sentiment.tracking import configure

        quiet_http_defaults()
        configure(settings)
    store.load_initial()
    store.start_polling()


def _endpoint() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def _install_hooks(app: Flask, settings: Settings, metrics: Metrics) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.endpoint in UNTIMED or "started" not in g:
            return response
        endpoint = _endpoint()
        elapsed = time.perf_counter() - g.started
        cost = elapsed * settings.instance_cost_per_hour / 3600
        status = str(response.status_code)
        shape = "batch" if g.get("batch") else "single"
        metrics.requests.labels(method=request.method, endpoint=endpoint, status=status).inc()
        metrics.latency.labels(endpoint=endpoint, shape=shape).observe(elapsed)
        metrics.cost_per_request.labels(endpoint=endpoint).set(cost)
        metrics.total_cost.inc(cost)
        return response

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> ResponseReturnValue:
        metrics.errors.labels(endpoint=_endpoint(), reason=error.code).inc()
        return jsonify(error.body()), error.status

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> ResponseReturnValue:
        code = (error.name or "error").lower().replace(" ", "_")
        status = error.code or 500
        metrics.errors.labels(endpoint=_endpoint(), reason=code).inc()
        return jsonify({"error": code, "detail": error.description or error.name}), status

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> ResponseReturnValue:
        log.exception("unhandled error")  # a bug: logged with traceback, never shown to users
        metrics.errors.labels(endpoint=_endpoint(), reason="internal_error").inc()
        return jsonify({"error": "internal_error", "detail": "unexpected server error"}), 500

"""Flask app factory: `create_app(settings, model=None)`.

Nothing is loaded at import. The factory wires settings, a per-app metrics registry and the
model store; with `model` given (tests) it serves that pipeline and never touches a registry.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import disable_created_metrics
from werkzeug.exceptions import HTTPException

from imdb_sentiment.core.errors import ConfigError
from imdb_sentiment.serving.http import api, docs, oip, ops, web
from imdb_sentiment.serving.http.api_errors import ApiError, error_body
from imdb_sentiment.serving.http.auth import TokenCheck
from imdb_sentiment.serving.http.context import ServiceContext
from imdb_sentiment.serving.http.json_provider import OrjsonProvider
from imdb_sentiment.serving.http.schemas import Schemas
from imdb_sentiment.serving.live_model import LiveModel
from imdb_sentiment.serving.logs import (
    CLIENT_REQUEST_ID,
    REQUEST_ID,
    REQUEST_ID_HEADER,
    client_request_id,
    new_request_id,
)
from imdb_sentiment.serving.metrics import Metrics
from imdb_sentiment.serving.predictions import PredictionLog
from imdb_sentiment.serving.service_settings import Settings, load_settings
from imdb_sentiment.store.database import PredictionStore, StoreUnavailableError, upgrade

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


def create_app(
    settings: Settings | None = None,
    model: Pipeline | None = None,
    shadow_model: Pipeline | None = None,
) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    # One byte over the limit gets through Werkzeug, so read_body can tell "too large" apart from
    # "exactly at the limit" for chunked bodies too (Werkzeug cuts those silently).
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    disable_created_metrics()  # *_created series only add noise for these dashboards
    metrics = Metrics()
    live = LiveModel(settings, metrics)
    prediction_log = PredictionLog(settings)
    prediction_store = _prediction_store(settings, metrics)
    schemas = Schemas.build(settings)
    # The candidate scored in the shadow: followed from the registry, or handed in (tests).
    follow_shadow = model is None and settings.shadow_sample > 0
    shadow = LiveModel(settings, metrics, shadow=True) if follow_shadow or shadow_model else None
    tokens = _tokens(settings)
    ServiceContext(
        settings, metrics, live, schemas, prediction_log, prediction_store, tokens, shadow
    ).install(app)
    for blueprint in (web.bp, api.bp, oip.bp, ops.bp, docs.bp):
        app.register_blueprint(blueprint)
    _install_hooks(app, settings, metrics)
    if model is not None:
        live.inject(model)
    else:
        _start_model(settings, live)
    if shadow is not None and shadow_model is not None:
        shadow.inject(shadow_model, version="shadow")
    elif shadow is not None:
        shadow.load_initial()
        shadow.start_polling()
    return app


def _tokens(settings: Settings) -> TokenCheck | None:
    if settings.api_tokens_file is None:
        return None
    try:
        return TokenCheck(settings.api_tokens_file)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"API_TOKENS_FILE: {exc}") from exc


def _prediction_store(settings: Settings, metrics: Metrics) -> PredictionStore | None:
    if not settings.database_url:
        return None
    migrated = None
    if settings.database_migrate == "auto":  # the embedded store; a release step otherwise
        try:
            migrated = upgrade(settings.database_url, settings.timeouts(migration=True))
            log.info("prediction store: %s", migrated.detail)
        except StoreUnavailableError as exc:  # served anyway; readiness says what is wrong
            log.warning("%s", exc)
    # Texts are kept where the prediction log may keep them: one privacy switch.
    store = PredictionStore.for_service(
        settings, keep_text=settings.prediction_log_text, processes=settings.spool_processes
    )
    metrics.watch_spool(store)
    store.start(known=migrated)
    return store


def _start_model(settings: Settings, store: LiveModel) -> None:
    if settings.model_sync == "inline":  # this process talks to the registry itself
        from imdb_sentiment.core.tracking import configure
        from imdb_sentiment.runtime.sync import quiet_http_defaults

        quiet_http_defaults()
        configure(settings)
    store.load_initial()
    store.start_polling()


def _endpoint() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def _install_hooks(app: Flask, settings: Settings, metrics: Metrics) -> None:
    # Each hook resolves Flask's `request` and `g` proxies once: every attribute read through a
    # proxy looks up the context again, and these hooks run on every request.
    cost_per_second = settings.instance_cost_per_hour / 3600
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

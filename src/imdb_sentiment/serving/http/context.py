"""The service's resources for one app (settings, metrics, the live model, request schemas,
the prediction log and the prediction store) and the typed accessor request handlers use to
reach them, as Flask's flaskr does with `get_db`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import cast

from flask import Flask, current_app, g

from imdb_sentiment.serving.http.api_errors import ApiError
from imdb_sentiment.serving.http.auth import TokenCheck
from imdb_sentiment.serving.http.schemas import Schemas
from imdb_sentiment.serving.live_model import LiveModel, LoadedModel
from imdb_sentiment.serving.metrics import Metrics
from imdb_sentiment.serving.predictions import PredictionLog
from imdb_sentiment.serving.scoring import Prediction, Scoring, ShadowBudget
from imdb_sentiment.serving.service_settings import Settings
from imdb_sentiment.store.database import PredictionStore

EXTENSION = "imdb_sentiment"


@dataclass
class ServiceContext:
    settings: Settings
    metrics: Metrics
    model: LiveModel  # the production model, hot-swapped
    schemas: Schemas
    prediction_log: PredictionLog  # JSON lines, for log shippers
    # The shared database of records and labels; None: DATABASE_URL is empty (no feedback).
    prediction_store: PredictionStore | None
    tokens: TokenCheck | None = None  # None: API_TOKENS_FILE unset (writes refused, see authorize)
    shadow_model: LiveModel | None = None  # the shadowed candidate (None: SHADOW_SAMPLE=0)

    @cached_property
    def scoring(self) -> Scoring:
        """Scoring as every front does it: metrics, the prediction log, the store's records,
        the shadowed candidate."""
        return Scoring(self.metrics, self.prediction_log, self.prediction_store,
                       self.settings.prediction_log_text, self.shadow_model,
                       self.settings.shadow_sample,
                       ShadowBudget(self.settings.shadow_budget_ms / 1000))  # fmt: skip

    def served_model(self) -> LoadedModel:
        """The production model, read once: this request keeps it even if a swap happens (a 503
        while there is none)."""
        model = self.model.current
        if model is None:
            raise ApiError(503, "model_unavailable", self.model.public_reason)
        return model

    def predict(self, model: LoadedModel, texts: list[str], explain: int = 0) -> list[Prediction]:
        """Score this request's texts under its ids (the server's and the caller's, set by
        `http.app`)."""
        g.batch = len(texts) > 1  # the request's latency is recorded apart from single reviews
        return self.scoring.score(
            model, texts, g.get("request_id"), g.get("client_request_id"), explain
        )

    def authorize(self, authorization: str | None, route: str) -> None:
        """A 401 (403 for writes on a server without tokens) unless the request may use
        `route` ("feedback" or "predict")."""
        if route != "feedback" and self.settings.api_tokens_for != "all":
            return
        if self.tokens is not None:
            self.tokens.require(authorization)
        elif route == "feedback" and not self.settings.allow_anonymous_writes:
            raise ApiError(
                403,
                "writes_disabled",
                "this server takes no feedback without API_TOKENS_FILE "
                "(or ALLOW_ANONYMOUS_WRITES=true, for local use)",
            )

    def unready_reason(self) -> str | None:
        """Why this process cannot serve (for clients: no internals), None when it can: a model
        loaded, and a store schema this release can use. The one readiness every probe asks
        (/readyz, /v2/health/ready, gRPC ServerReady): KServe's and Kubernetes' alike."""
        if self.model.current is None:
            return self.model.public_reason
        store = self.prediction_store
        return store.unusable_reason() if store is not None else None

    def close(self) -> None:
        """Write out what the background writers hold (a worker's last act)."""
        for model in (self.model, self.shadow_model):
            if model is not None:
                model.stop()
        self.prediction_log.close()
        if self.prediction_store is not None:
            self.prediction_store.close(drain_s=self.settings.drain_s)

    def install(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self

    @staticmethod
    def of(app: Flask) -> ServiceContext:
        return cast(ServiceContext, app.extensions[EXTENSION])


def service() -> ServiceContext:
    """This request's app's resources."""
    return ServiceContext.of(current_app)

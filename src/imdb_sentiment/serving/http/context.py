"""The service's resources for one app (settings, metrics, model store, request schemas,
prediction log) and the typed accessor request handlers use to reach them, as Flask's flaskr
does with `get_db`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import cast

from flask import Flask, current_app

from imdb_sentiment.serving.http.auth import TokenCheck
from imdb_sentiment.serving.http.errors import ApiError
from imdb_sentiment.serving.http.schemas import Schemas
from imdb_sentiment.serving.metrics import Metrics
from imdb_sentiment.serving.model.store import ModelStore
from imdb_sentiment.serving.predictions import PredictionLog
from imdb_sentiment.serving.scoring import Scoring
from imdb_sentiment.serving.settings import Settings
from imdb_sentiment.store.database import PredictionStore

EXTENSION = "imdb_sentiment"


@dataclass
class ServiceContext:
    settings: Settings
    metrics: Metrics
    store: ModelStore
    schemas: Schemas
    predictions: PredictionLog
    records: PredictionStore | None  # None: DATABASE_URL is empty (no store, no feedback)
    tokens: TokenCheck | None = None  # None: API_TOKENS_FILE unset (writes refused, see authorize)
    shadow: ModelStore | None = None  # the shadowed candidate (None: SHADOW_SAMPLE=0)

    @cached_property
    def scoring(self) -> Scoring:
        """Scoring as every front does it: metrics, the prediction log, the store's records,
        the shadowed candidate."""
        return Scoring(self.metrics, self.predictions, self.records,
                       self.settings.prediction_log_text, self.shadow,
                       self.settings.shadow_sample)  # fmt: skip

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

    def close(self) -> None:
        """Write out what the background writers hold (a worker's last act)."""
        for models in (self.store, self.shadow):
            if models is not None:
                models.stop()
        self.predictions.close()
        if self.records is not None:
            self.records.close()

    def install(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self

    @staticmethod
    def of(app: Flask) -> ServiceContext:
        return cast(ServiceContext, app.extensions[EXTENSION])


def service() -> ServiceContext:
    """This request's app's resources."""
    return ServiceContext.of(current_app)

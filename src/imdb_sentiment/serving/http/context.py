"""How request handlers reach the scoring service of their app (as Flask's flaskr does with
`get_db`), and the request's ids `http.app` set in Flask's `g`."""

from __future__ import annotations

from typing import cast

from flask import Flask, current_app, g

from imdb_sentiment.serving.http.schemas import Schemas
from imdb_sentiment.serving.live_model import LoadedModel
from imdb_sentiment.serving.scoring import Prediction, ScoringService

SERVICE = "imdb_sentiment"
SCHEMAS = "imdb_sentiment.schemas"


def install(app: Flask, scoring_service: ScoringService, schemas: Schemas) -> None:
    app.extensions[SERVICE] = scoring_service
    app.extensions[SCHEMAS] = schemas


def service_of(app: Flask) -> ScoringService:
    return cast(ScoringService, app.extensions[SERVICE])


def service() -> ScoringService:
    """This request's app's scoring service."""
    return service_of(current_app)


def schemas() -> Schemas:
    """This request's app's request shapes, with its limits."""
    return cast(Schemas, current_app.extensions[SCHEMAS])


def predict(model: LoadedModel, texts: list[str], explain: int = 0) -> list[Prediction]:
    """Score this request's texts under its ids (the server's and the caller's)."""
    g.batch = len(texts) > 1  # the request's latency is recorded apart from single reviews
    return service().predict(model, texts, g.get("request_id"), g.get("client_request_id"), explain)

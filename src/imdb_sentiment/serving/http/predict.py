"""Scoring an HTTP request's texts: the served model (or a 503), and `serving.scoring` under
this request's ids (the server's and the caller's, set by `http.app`)."""

from __future__ import annotations

import time

from flask import g

from imdb_sentiment.serving.http.context import ServiceContext
from imdb_sentiment.serving.http.errors import ApiError
from imdb_sentiment.serving.model.store import LoadedModel, ModelStore
from imdb_sentiment.serving.scoring import Prediction

__all__ = ["Prediction", "Timer", "predict", "require_model"]


def require_model(store: ModelStore) -> LoadedModel:
    model = store.current  # read once: this request keeps this model even if a swap happens
    if model is None:
        raise ApiError(503, "model_unavailable", store.public_reason)
    return model


def predict(
    ctx: ServiceContext, model: LoadedModel, texts: list[str], explain: int = 0
) -> list[Prediction]:
    g.batch = len(texts) > 1  # the request's latency is recorded apart from single reviews
    return ctx.scoring.score(model, texts, g.get("request_id"), g.get("client_request_id"), explain)


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start

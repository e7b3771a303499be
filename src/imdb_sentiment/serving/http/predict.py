"""Scoring requests against the current model, with the per-prediction metrics and the sampled
prediction log."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flask import g

from imdb_sentiment.labels import NEGATIVE, POSITIVE
from imdb_sentiment.runtime.records import PredictionRecord
from imdb_sentiment.runtime.scorer import Score
from imdb_sentiment.serving.http.context import ServiceContext
from imdb_sentiment.serving.http.errors import ApiError
from imdb_sentiment.serving.model.store import LoadedModel, ModelStore


@dataclass(frozen=True)
class Prediction:
    text: str
    score: Score

    @property
    def positive(self) -> bool:
        return self.score.label == POSITIVE

    @property
    def label(self) -> str:
        return self.score.label

    @property
    def confidence(self) -> float:
        p = self.score.p_positive
        return p if self.positive else 1.0 - p

    @property
    def evidence(self) -> dict[str, int]:
        """How many of the text's tokens the model knows. With none (a text of NUL or
        zero-width characters, another script), the probability is only the model's prior."""
        tokens = self.score.tokens
        return {"tokens": tokens, "known_tokens": round(tokens * (1.0 - self.score.unknown_share))}

    def record(
        self,
        model: LoadedModel,
        request_id: str | None,
        item: int = 0,
        keep_text: bool = False,
        client_request_id: str | None = None,
    ) -> PredictionRecord:
        """What the store and the prediction log keep; the text only where texts are kept."""
        return PredictionRecord(
            time=time.time(),
            request_id=request_id,
            client_request_id=client_request_id,
            model_version=model.version,
            probability=round(self.score.p_positive, 6),
            label=self.label,
            unknown_share=round(self.score.unknown_share, 4),
            tokens=self.score.tokens,
            text_chars=len(self.text),
            text=self.text if keep_text else None,
            item=item,
        )

    def as_json(self, model: LoadedModel, explain: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "label": self.label,
            "probability": round(self.confidence, 6),
            "scores": {
                POSITIVE: round(self.score.p_positive, 6),
                NEGATIVE: round(1.0 - self.score.p_positive, 6),
            },
            "model": {"name": model.name, "version": model.version},
            "evidence": self.evidence,
        }
        if explain:
            body["explanation"] = [
                {
                    "term": c.term,
                    "weight": round(c.weight, 6),
                    "direction": POSITIVE if c.weight > 0 else NEGATIVE,
                }
                for c in self.score.contributions
            ]
        return body


def require_model(store: ModelStore) -> LoadedModel:
    model = store.current  # read once: this request keeps this model even if a swap happens
    if model is None:
        raise ApiError(503, "model_unavailable", store.public_reason)
    return model


def predict(
    ctx: ServiceContext, model: LoadedModel, texts: list[str], explain: int = 0
) -> list[Prediction]:
    scorer = model.scorer
    g.batch = len(texts) > 1  # the request's latency is recorded apart from single reviews
    if explain or len(texts) == 1:
        scores = [scorer.score(text, explain=explain) for text in texts]
    else:
        scores = scorer.score_batch(texts)  # vectorised over the batch
    metrics, log, records = ctx.metrics, ctx.predictions, ctx.records
    keep_text = ctx.settings.prediction_log_text  # one privacy switch: the store and the log
    request_id, client_id = g.get("request_id"), g.get("client_request_id")
    results, kept = [], []
    for item, (text, score) in enumerate(zip(texts, scores, strict=True)):
        prediction = Prediction(text, score)
        metrics.observe_prediction(
            prediction.label, prediction.confidence, len(text), score.unknown_share
        )
        sampled = log.sampled()
        if sampled or records is not None:
            record = prediction.record(model, request_id, item, keep_text, client_id)
            if sampled:
                log.record(record)
            kept.append(record)
        results.append(prediction)
    if records is not None and request_id is not None:  # in the spool before the answer
        records.remember(kept)
    return results


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start

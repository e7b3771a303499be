"""Scoring one request's texts with the served model: what every front of the service (the
HTTP app, the gRPC server) does the same way — the per-prediction metrics, the sampled
prediction log, and the records kept in the prediction store under the request's ids.

Imports: the standard library, `labels`, `runtime.records`, `runtime.scorer`,
`serving.metrics`, `serving.model.store`, `serving.predictions`, `store.database`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from imdb_sentiment.labels import NEGATIVE, POSITIVE
from imdb_sentiment.runtime.records import PredictionRecord
from imdb_sentiment.runtime.scorer import Score
from imdb_sentiment.serving.metrics import Metrics
from imdb_sentiment.serving.model.store import LoadedModel
from imdb_sentiment.serving.predictions import PredictionLog
from imdb_sentiment.store.database import PredictionStore


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


@dataclass(frozen=True)
class Scoring:
    """The pieces a prediction touches besides the model."""

    metrics: Metrics
    log: PredictionLog
    records: PredictionStore | None  # None: no store
    keep_text: bool  # one privacy switch: the store and the prediction log

    def score(
        self,
        model: LoadedModel,
        texts: list[str],
        request_id: str | None,
        client_request_id: str | None = None,
        explain: int = 0,
    ) -> list[Prediction]:
        """Score `texts`; count, sample and keep every prediction (the records are in the
        store's spool when this returns)."""
        scorer = model.scorer
        if explain or len(texts) == 1:
            scores = [scorer.score(text, explain=explain) for text in texts]
        else:
            scores = scorer.score_batch(texts)  # vectorised over the batch
        metrics, log, records = self.metrics, self.log, self.records
        results, kept = [], []
        for item, (text, score) in enumerate(zip(texts, scores, strict=True)):
            prediction = Prediction(text, score)
            metrics.observe_prediction(
                prediction.label, prediction.confidence, len(text), score.unknown_share
            )
            sampled = log.sampled()
            if sampled or records is not None:
                record = prediction.record(model, request_id, item, self.keep_text,
                                           client_request_id)  # fmt: skip
                if sampled:
                    log.record(record)
                kept.append(record)
            results.append(prediction)
        if records is not None and request_id is not None:
            records.remember(kept)
        return results

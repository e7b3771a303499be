"""Scoring one request's texts with the served model: what every front of the service (the
HTTP app, the gRPC server) does the same way — the per-prediction metrics, the sampled
prediction log, and the records kept in the prediction store under the request's ids.

Shadow scoring: a sampled share of requests (SHADOW_SAMPLE) is also scored by the candidate
(`LiveModel(shadow=True)`), whose answer goes into the same records — never into the response,
and a failure of it never fails the request. It runs in the request, after production's scores:
a sync worker has no "after the response" that still precedes the record's acknowledgement
(the record is in the spool before the response). It is bounded: a request is shadowed only
while the candidate's measured cost for its texts fits SHADOW_BUDGET_MS (skipped and counted
otherwise, and measured again now and then), so a slow candidate cannot slow production's
answers; a failing one is counted, its traceback logged once a minute.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from imdb_sentiment.core.labels import NEGATIVE, POSITIVE
from imdb_sentiment.runtime.scorer import Score
from imdb_sentiment.serving.live_model import LiveModel, LoadedModel
from imdb_sentiment.serving.metrics import Metrics
from imdb_sentiment.serving.predictions import PredictionLog
from imdb_sentiment.store.database import PredictionStore
from imdb_sentiment.store.records import PredictionRecord

logger = logging.getLogger(__name__)


class Prediction(NamedTuple):  # one per review served: a NamedTuple is quick to build
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
        shadow: tuple[str, Score] | None = None,
    ) -> PredictionRecord:
        """What the store and the prediction log keep; the text only where texts are kept;
        `shadow`: the candidate's (version, score) on the same text."""
        version, other = shadow if shadow is not None else (None, None)
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
            shadow_version=version,
            shadow_probability=None if other is None else round(other.p_positive, 6),
            shadow_label=None if other is None else other.label,
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


@dataclass
class ShadowBudget:
    """The candidate's cost per review (a moving average of what it took) against a budget
    per request; over it, requests go unshadowed, but every RECHECK-th is measured again."""

    seconds: float  # per request; 0: no bound
    per_review: float = 0.0  # not measured yet: the first call measures it
    skipped: int = 0
    last_traceback: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    RECHECK = 100

    def allows(self, reviews: int) -> bool:
        if self.seconds <= 0 or self.per_review * reviews <= self.seconds:
            return True
        with self.lock:
            self.skipped += 1
            return self.skipped % self.RECHECK == 0

    def measured(self, seconds: float, reviews: int) -> None:
        cost = seconds / max(1, reviews)
        with self.lock:
            self.per_review = cost if self.per_review == 0.0 else 0.8 * self.per_review + 0.2 * cost

    def traceback_due(self) -> bool:
        now = time.monotonic()
        with self.lock:
            if now - self.last_traceback < 60.0:
                return False
            self.last_traceback = now
            return True


@dataclass(frozen=True)
class Scoring:
    """The pieces a prediction touches besides the model."""

    metrics: Metrics
    log: PredictionLog
    prediction_store: PredictionStore | None  # None: no store
    keep_text: bool  # one privacy switch: the store and the prediction log
    shadow: LiveModel | None = None  # the candidate (None: no shadow scoring)
    shadow_sample: float = 0.0
    shadow_budget: ShadowBudget = field(default_factory=lambda: ShadowBudget(0.0))
    _draw: random.Random = field(default_factory=random.Random, repr=False)

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
        native = scorer.native
        if explain or (len(texts) == 1 and native is None):
            scores = [scorer.score(text, explain=explain) for text in texts]
        else:  # in the compiled kernel, or vectorised over the batch
            scores = scorer.score_batch(texts)
            if native is not None:  # this thread's call (gRPC threads score at once)
                python = native.last_python_path
                self.metrics.scorer_reviews.labels("compiled").inc(len(texts) - python)
                self.metrics.scorer_reviews.labels("python").inc(python)
        metrics, log, records = self.metrics, self.log, self.prediction_store
        shadowed = self._shadow_scores(model, texts)
        results = [Prediction(text, score) for text, score in zip(texts, scores, strict=True)]
        metrics.observe_predictions([p.label for p in results],
                                    [p.confidence for p in results], [len(t) for t in texts],
                                    [s.unknown_share for s in scores])  # fmt: skip
        kept = []
        for item, prediction in enumerate(results):
            shadow = None
            if shadowed is not None:
                shadow = (shadowed[0], shadowed[1][item])
                agreement = "agree" if shadow[1].label == prediction.label else "disagree"
                metrics.shadowed.labels(model.version, shadow[0], agreement).inc()
            sampled = log.sampled()
            if sampled or records is not None:
                record = prediction.record(model, request_id, item, self.keep_text,
                                           client_request_id, shadow)  # fmt: skip
                if sampled:
                    log.record(record)
                kept.append(record)
        if records is not None and request_id is not None:
            records.remember(kept)
        return results

    def shadow_one(self, model: LoadedModel, text: str) -> tuple[str, Score] | None:
        """The candidate's answer on a text that arrives with its true label (feedback with a
        text): always scored, unsampled — each is a labelled pair."""
        found = self._shadow_scores(model, [text], sample=1.0)
        return None if found is None else (found[0], found[1][0])

    def _shadow_scores(
        self, model: LoadedModel, texts: list[str], sample: float | None = None
    ) -> tuple[str, list[Score]] | None:
        """The candidate's version and scores for a sampled request; None otherwise, and when
        shadow scoring fails (counted and logged: the response never depends on it)."""
        candidate = self.shadow.current if self.shadow is not None else None
        if candidate is None or candidate.version == model.version:
            return None
        if self._draw.random() >= (self.shadow_sample if sample is None else sample):
            return None
        budget = self.shadow_budget
        if not budget.allows(len(texts)):
            self.metrics.shadow_skipped.labels(reason="budget").inc()
            return None
        started = time.perf_counter()
        try:
            scorer = candidate.scorer
            scores = (scorer.score_batch(texts) if len(texts) > 1
                      else [scorer.score(texts[0])])  # fmt: skip
        except Exception:
            self.metrics.shadow_errors.inc()
            if budget.traceback_due():
                logger.exception(
                    "shadow scoring with version %s failed (logged once a "
                    "minute; shadow_errors_total counts each)",
                    candidate.version,
                )
            return None
        budget.measured(time.perf_counter() - started, len(texts))
        return candidate.version, scores

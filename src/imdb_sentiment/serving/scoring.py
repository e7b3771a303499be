"""The scoring service with no web framework: a request's texts in → predictions, records,
shadow scores and metrics out. It holds one serving process's resources (settings, metrics, the
live model and the shadowed candidate, the prediction log, the prediction store, the bearer
tokens) and does what every front asks of them — the served model, authorization, texts checked
against the limits, scoring under the request's ids, readiness, shutdown.

The HTTP app (`http.app`) and the gRPC server (`grpc.service`) are adapters over it: each turns
its protocol's request into texts and ids, calls `ScoringService.predict`, and turns the
predictions (or an `ApiError`) into its protocol's answer. Neither imports the other.
`build_service` wires it; nothing happens at import.

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
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

from prometheus_client import disable_created_metrics
from pydantic import Field, StringConstraints, TypeAdapter

from imdb_sentiment.core.errors import ConfigError
from imdb_sentiment.core.labels import NEGATIVE, POSITIVE
from imdb_sentiment.runtime.scorer import Score
from imdb_sentiment.serving.api_errors import ApiError
from imdb_sentiment.serving.auth import TokenCheck
from imdb_sentiment.serving.live_model import LiveModel, LoadedModel
from imdb_sentiment.serving.metrics import Metrics
from imdb_sentiment.serving.predictions import PredictionLog
from imdb_sentiment.serving.service_settings import Settings
from imdb_sentiment.store.database import PredictionStore
from imdb_sentiment.store.migrate import upgrade
from imdb_sentiment.store.records import PredictionRecord
from imdb_sentiment.store.store_errors import StoreUnavailableError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)
# A review needs one character that is not whitespace (Python's str.isspace). Spelled out, not
# `\S`: ECMA (OpenAPI clients), Python and Rust (pydantic) disagree on what `\s` covers (U+0085,
# U+FEFF). NUL or zero-width characters pass: such a text is scored, and the response says the
# model saw no evidence (`evidence`).
NOT_BLANK = r"[^\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


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
                log.exception(
                    "shadow scoring with version %s failed (logged once a "
                    "minute; shadow_errors_total counts each)",
                    candidate.version,
                )
            return None
        budget.measured(time.perf_counter() - started, len(texts))
        return candidate.version, scores


def text_limits(settings: Settings) -> StringConstraints:
    """One review as the service takes it: 1..MAX_TEXT_CHARS characters, not all blank."""
    return StringConstraints(
        min_length=1, max_length=settings.service.max_text_chars, pattern=NOT_BLANK
    )


def batch_limits(settings: Settings) -> Any:
    """One request's reviews: 1..MAX_BATCH_SIZE of them."""
    return Field(min_length=1, max_length=settings.service.max_batch_size)


@dataclass
class ScoringService:
    settings: Settings
    metrics: Metrics
    model: LiveModel  # the production model, hot-swapped
    prediction_log: PredictionLog  # JSON lines, for log shippers
    # The shared database of records and labels; None: DATABASE_URL is empty (no feedback).
    prediction_store: PredictionStore | None
    tokens: TokenCheck | None = None  # None: API_TOKENS_FILE unset (writes refused, see authorize)
    shadow_model: LiveModel | None = None  # the shadowed candidate (None: SHADOW_SAMPLE=0)

    @cached_property
    def texts(self) -> TypeAdapter[list[str]]:
        """A request's texts checked against this service's limits (pydantic's errors)."""
        text = Annotated[str, text_limits(self.settings)]
        return TypeAdapter(Annotated[list[text], batch_limits(self.settings)])

    @cached_property
    def scoring(self) -> Scoring:
        """Scoring as every front does it: metrics, the prediction log, the store's records,
        the shadowed candidate."""
        return Scoring(self.metrics, self.prediction_log, self.prediction_store,
                       self.settings.service.prediction_log_text, self.shadow_model,
                       self.settings.service.shadow_sample,
                       ShadowBudget(self.settings.service.shadow_budget_ms / 1000))  # fmt: skip

    def served_model(self) -> LoadedModel:
        """The production model, read once: this request keeps it even if a swap happens (a 503
        while there is none)."""
        model = self.model.current
        if model is None:
            raise ApiError(503, "model_unavailable", self.model.public_reason)
        return model

    def predict(self, model: LoadedModel, texts: list[str], request_id: str | None,
                client_request_id: str | None, explain: int = 0) -> list[Prediction]:  # fmt: skip
        """Score one request's texts; their records are kept under the server's request id,
        correlated with the caller's."""
        return self.scoring.score(model, texts, request_id, client_request_id, explain)

    def authorize(self, authorization: str | None, route: str) -> None:
        """A 401 (403 for writes on a server without tokens) unless the request may use
        `route` ("feedback" or "predict")."""
        if route != "feedback" and self.settings.service.api_tokens_for != "all":
            return
        if self.tokens is not None:
            self.tokens.require(authorization)
        elif route == "feedback" and not self.settings.service.allow_anonymous_writes:
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
        """Write out what the background writers hold (a process's last act)."""
        for model in (self.model, self.shadow_model):
            if model is not None:
                model.stop()
        self.prediction_log.close()
        if self.prediction_store is not None:
            self.prediction_store.close(drain_s=self.settings.service.drain_s)


def build_service(
    settings: Settings,
    model: Pipeline | None = None,
    shadow_model: Pipeline | None = None,
    migrate: bool = True,
) -> ScoringService:
    """The service of one process: with `model` given (tests) it serves that pipeline and never
    touches a registry; otherwise it follows the model cache (and the candidate's, with
    SHADOW_SAMPLE > 0). `migrate`: this process may migrate the store (DATABASE_MIGRATE=auto)
    — a lone process does; a server's workers and gRPC fronts leave it to the master."""
    disable_created_metrics()  # *_created series only add noise for these dashboards
    tokens = _tokens(settings)  # a bad tokens file stops the start before any thread runs
    metrics = Metrics()
    live = LiveModel(settings, metrics)
    follow_shadow = model is None and settings.service.shadow_sample > 0
    shadow = LiveModel(settings, metrics, shadow=True) if follow_shadow or shadow_model else None
    store = _prediction_store(settings, metrics, migrate)
    service = ScoringService(
        settings, metrics, live, PredictionLog(settings), store, tokens, shadow
    )
    if model is not None:
        live.inject(model)
    else:
        _start_model(settings, live)
    if shadow is not None and shadow_model is not None:
        shadow.inject(shadow_model, version="shadow")
    elif shadow is not None:
        shadow.load_initial()
        shadow.start_polling()
    return service


def _tokens(settings: Settings) -> TokenCheck | None:
    if settings.service.api_tokens_file is None:
        return None
    try:
        return TokenCheck(settings.service.api_tokens_file)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"API_TOKENS_FILE: {exc}") from exc


def _prediction_store(
    settings: Settings, metrics: Metrics, migrate: bool
) -> PredictionStore | None:
    if not settings.store.database_url:
        return None
    migrated = None
    if migrate and settings.store.database_migrate == "auto":  # embedded; a release step otherwise
        try:
            migrated = upgrade(settings.store.database_url, settings.store.timeouts(migration=True))
            log.info("prediction store: %s", migrated.detail)
        except StoreUnavailableError as exc:  # served anyway; readiness says what is wrong
            log.warning("%s", exc)
    # Texts are kept where the prediction log may keep them: one privacy switch.
    store = PredictionStore.for_service(
        settings.store,
        keep_text=settings.service.prediction_log_text,
        processes=settings.service.spool_processes,
    )
    metrics.watch_spool(store)
    store.start(known=migrated)
    return store


def _start_model(settings: Settings, live: LiveModel) -> None:
    if settings.service.model_sync == "inline":  # this process talks to the registry itself
        from imdb_sentiment.core.tracking import configure
        from imdb_sentiment.runtime.sync import quiet_http_defaults

        quiet_http_defaults()
        configure(settings.model)
    live.load_initial()
    live.start_polling()

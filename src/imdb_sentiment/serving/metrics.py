"""Prometheus metrics, one registry per app; multiprocess-safe under gunicorn.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set (`serving.server.Server`) before any worker imports
prometheus_client, so every metric writes to shared files and /metrics aggregates all workers.
Without it (tests, `flask run`), each app has its own in-memory registry.
"""

from __future__ import annotations

import bisect
import collections
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from imdb_sentiment.store.database import PredictionStore
    from imdb_sentiment.store.retention import RetentionRun
    from imdb_sentiment.store.spool import Spool

# Up to 10 s: alert thresholds must lie below the largest finite bucket, or histogram_quantile
# can never exceed them (HighBatchLatencyP99 is 2.5 s; tests/unit check every rule against these).
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)  # fmt: skip
# The probability of the predicted label lies in [min(t, 1 - t), 1] for a model's threshold t:
# buckets below 0.5 too, for a threshold other than 0.5.
CONFIDENCE_BUCKETS = (
    0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0
)  # fmt: skip
LENGTH_BUCKETS = (50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 50000)
SHARE_BUCKETS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """Every metric the service exports. Names of the seed project's metrics are unchanged."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # --- the seed's metrics ---
        # status: the HTTP code, so alerts can tell server faults (5xx) from client errors.
        self.requests = Counter(
            "app_request_count", "HTTP requests", ["method", "endpoint", "status"], registry=r
        )
        # shape: "single" (one review) or "batch" (several): their latencies differ by design.
        self.latency = Histogram(
            "app_request_latency_seconds",
            "Request latency",
            ["endpoint", "shape"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "model_prediction_count", "Predictions by class", ["prediction"], registry=r
        )
        self.cost_per_request = Gauge(
            "app_cost_per_request_usd",
            "Compute cost of the latest request (latency x $/hour)",
            ["endpoint"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        # A Counter (exported as app_total_cost_usd_total): read with increase(), which survives
        # restarts, unlike delta() of a Gauge that resets to zero with every process.
        self.total_cost = Counter(
            "app_total_cost_usd", "Accumulated compute cost of all requests", registry=r
        )
        # --- additions ---
        # Reviews scored by the compiled kernel or by the Python path (runtime.kernel): the
        # kernel hands back what it does not reproduce exactly (any non-ASCII review).
        self.scorer_reviews = Counter(
            "scorer_reviews", "Reviews scored, by scorer path", ["path"], registry=r
        )
        self.errors = Counter(
            "app_request_errors", "Failed requests by reason", ["endpoint", "reason"], registry=r
        )
        self.model_info = Gauge(
            "model_info",
            "Model being served (1 = loaded)",
            ["name", "version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        # The candidate each worker scores in the shadow, like model_info: an old version stays
        # at 1 while any live worker still shadows it (a report then mixes both).
        self.shadow_model_info = Gauge(
            "shadow_model_info",
            "Candidate scored in the shadow (1 = loaded)",
            ["name", "version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        # The served version's test-split quality, as registered (quality/metrics.json of the
        # model): accuracy, f1, roc_auc, ece. Old versions drop to 0 on a swap, like model_info.
        self.evaluated = Gauge(
            "model_evaluated_quality",
            "Test-split quality of the model version, as evaluated by the pipeline",
            ["name", "version", "metric"],
            registry=r,
            multiprocess_mode="livemax",
        )
        # Labelled feedback by outcome (tp, tn, fp, fn; positive = the positive class): live
        # accuracy, precision and recall over a window are recording rules (alerts.yml).
        self.feedback = Counter(
            "model_feedback",
            "Predictions labelled through /api/v1/feedback, by outcome",
            ["name", "version", "outcome"],
            registry=r,
        )
        self.confidence = Histogram(
            "model_prediction_confidence",
            "Probability of the predicted class",
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.input_length = Histogram(
            "model_input_length_chars",
            "Review length in characters",
            buckets=LENGTH_BUCKETS,
            registry=r,
        )
        self.unknown_share = Histogram(
            "model_unknown_token_ratio",
            "Share of word tokens unknown to the model's vocabulary",
            buckets=SHARE_BUCKETS,
            registry=r,
        )
        self.reloads = Counter(
            "model_reload", "Model (re)load attempts by result", ["result"], registry=r
        )
        # Shadow scoring (serving.scoring): reviews the candidate also scored, by whether its
        # label agreed with production's; and labelled shadowed reviews by which model was right
        # (both, neither, production_only, candidate_only): the paired evidence, whose
        # discordant counts the CandidateWorseInShadow alert tests (alerts.yml).
        self.shadowed = Counter(
            "shadow_predictions",
            "Reviews scored by the shadowed candidate, by agreement with production",
            ["production_version", "candidate_version", "agreement"],
            registry=r,
        )
        self.shadow_pairs = Counter(
            "shadow_labelled_pairs",
            "Labelled shadowed reviews, by which model was right",
            ["production_version", "candidate_version", "outcome"],
            registry=r,
        )
        self.shadow_errors = Counter(
            "shadow_errors", "Shadow scorings that failed (the response was not affected)",
            registry=r,
        )  # fmt: skip
        self.shadow_skipped = Counter(
            "shadow_skipped", "Sampled requests not shadowed: the candidate's cost was over "
            "SHADOW_BUDGET_MS", ["reason"], registry=r,
        )  # fmt: skip

        for result in ("success", "failure"):  # export zeros: alerts need the series to exist
            self.reloads.labels(result=result)
        # Labelled children by label values: `labels()` takes a lock and builds a key on every
        # call, and these are observed on every request.
        self._request_children: dict[tuple[str, str, str, str], tuple[Any, Any, Any]] = {}
        self._by_prediction: dict[str, Any] = {}
        self._spool: SpoolCollector | None = None
        # The store's background work, per process: the stalest flusher of the pod (a stalled
        # one shows), and retention's last run wherever it ran.
        self.flush_round = Gauge(
            "prediction_spool_flush_round_timestamp_seconds",
            "When the stalest live flusher of the pod last finished a round",
            multiprocess_mode="livemin", registry=r,
        )  # fmt: skip
        self.retention_behind = Gauge(
            "prediction_retention_behind",
            "1 when the last retention run stopped at its time budget with more to delete",
            multiprocess_mode="mostrecent", registry=r,
        )  # fmt: skip
        self.retention_last_run = Gauge(
            "prediction_retention_last_run_timestamp_seconds", "When retention last ran",
            multiprocess_mode="max", registry=r,
        )  # fmt: skip
        self.retention_deleted = Counter(
            "prediction_retention_deleted", "Unlabelled predictions deleted by retention",
            registry=r,
        )  # fmt: skip

    def watch_spool(self, store: PredictionStore) -> None:
        """Export the pod's spool (records waiting, their age, what was written, dropped and
        quarantined), read from the spool's published totals at each scrape: its ledger
        survives restarts, and one pod has one spool whichever worker answers the scrape; and
        the store's background work as it happens."""
        store.on_flush_round = self.flush_round.set
        store.retention.on_run = self.observe_retention
        if store.spool is not None:
            self._spool = SpoolCollector(store.spool)
            self.registry.register(self._spool)

    def observe_retention(self, run: RetentionRun) -> None:
        self.retention_behind.set(1 if run.behind else 0)
        self.retention_last_run.set(run.at)
        self.retention_deleted.inc(run.deleted)

    def observe_request(
        self, method: str, endpoint: str, status: str, shape: str, seconds: float, cost: float
    ) -> None:
        """One finished request: its count, latency, and compute cost."""
        key = (method, endpoint, status, shape)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(method=method, endpoint=endpoint, status=status),
                self.latency.labels(endpoint=endpoint, shape=shape),
                self.cost_per_request.labels(endpoint=endpoint),
            )
        count, latency, cost_gauge = children
        count.inc()
        latency.observe(seconds)
        cost_gauge.set(cost)
        self.total_cost.inc(cost)

    def observe_predictions(
        self,
        labels: Sequence[str],
        confidences: Sequence[float],
        chars: Sequence[int],
        unknown_shares: Sequence[float],
    ) -> None:
        """One request's scored reviews: what `observe` of each would record, written once per
        series touched (each write is a lock and an mmap store in multiprocess mode: per review,
        that was a third of a short-review batch's time)."""
        for label, count in collections.Counter(labels).items():
            child = self._by_prediction.get(label)
            if child is None:
                child = self._by_prediction[label] = self.predictions.labels(prediction=label)
            child.inc(count)
        observe_all(self.confidence, confidences)
        observe_all(self.input_length, chars)
        observe_all(self.unknown_share, unknown_shares)

    def render(self) -> tuple[bytes, str]:
        """Exposition text: this process's registry, or all workers' in multiprocess mode."""
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        aggregate = CollectorRegistry()
        multiprocess.MultiProcessCollector(aggregate, path=directory)
        if self._spool is not None:
            aggregate.register(self._spool)
        return generate_latest(aggregate), CONTENT_TYPE_LATEST


class SpoolCollector(Collector):
    """The spool's state and ledger as metrics (alerts PredictionRecordsDropped and
    PredictionSpoolBacklog)."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def collect(self) -> Iterator[Metric]:
        try:
            state = self.spool.state()
        except (sqlite3.Error, OSError):
            return
        yield GaugeMetricFamily(
            "prediction_spool_records", "Prediction records waiting in the spool", state.records
        )
        age = 0.0 if state.oldest is None else max(0.0, time.time() - state.oldest)
        yield GaugeMetricFamily(
            "prediction_spool_oldest_age_seconds", "Age of the oldest record waiting", age
        )
        yield CounterMetricFamily(
            "prediction_spool_written_records",
            "Prediction records written from the spool to the database",
            state.ledger.get("written", 0),
        )
        dropped = CounterMetricFamily(
            "prediction_spool_dropped_records",
            "Prediction records dropped by the spool, by reason (over its size or age bound, "
            "or its disk failed)",
            labels=["reason"],
        )
        for reason in ("full", "expired", "unavailable"):
            dropped.add_metric([reason], state.ledger.get(f"dropped_{reason}", 0))
        yield dropped
        yield CounterMetricFamily(
            "prediction_spool_quarantined_records",
            "Prediction records the database refused for good, set aside in the spool",
            state.ledger.get("quarantined", 0),
        )


def observe_all(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe(v)` for every v of `values` (an unlabelled histogram), with one
    increment per bucket touched. prometheus_client has no bulk observe, so this adds to the
    histogram's own values (its `_sum` and non-cumulative `_buckets`, bucket i holding what
    `observe` would put there: the first upper bound >= v; NaN in none). A test compares the
    exposition with `observe`'s on the pinned version."""
    if not values:
        return
    bounds = histogram._upper_bounds
    counts = collections.Counter(bisect.bisect_left(bounds, v) for v in values if v == v)
    histogram._sum.inc(sum(values))
    for bucket, count in counts.items():
        histogram._buckets[bucket].inc(count)

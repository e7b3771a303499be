"""Bulk observation: one request's reviews recorded at once read exactly as one `observe` each."""

from __future__ import annotations

import math

from prometheus_client import generate_latest

from imdb_sentiment.serving.metrics import Metrics


def exposition(metrics: Metrics) -> str:
    """The registry's text, without the `_created` times of its two instances."""
    text = generate_latest(metrics.registry).decode()
    return "\n".join(line for line in text.splitlines() if "_created" not in line)


def test_a_requests_predictions_at_once_read_as_one_observe_each() -> None:
    labels = ["positive", "negative", "positive", "positive", "negative", "negative"]
    confidences = [0.5, 0.5000001, 0.55, 0.99, 1.0, 0.731]  # bounds themselves, between, top
    chars = [0, 50, 51, 999, 60_000, 7]  # past the largest finite bound: +Inf
    unknown = [0.0, 0.0, 1.0, 0.3, math.nan, 0.049]  # NaN: in no bucket, the sum NaN
    one_by_one, at_once = Metrics(), Metrics()
    for label, confidence, length, share in zip(labels, confidences, chars, unknown, strict=True):
        one_by_one.predictions.labels(prediction=label).inc()
        one_by_one.confidence.observe(confidence)
        one_by_one.input_length.observe(length)
        one_by_one.unknown_share.observe(share)
    at_once.observe_predictions(labels, confidences, chars, unknown)
    expected = exposition(one_by_one)
    assert 'model_input_length_chars_bucket{le="+Inf"} 6.0' in expected
    assert exposition(at_once) == expected


def test_an_empty_request_records_nothing() -> None:
    metrics, untouched = Metrics(), Metrics()
    metrics.observe_predictions([], [], [], [])
    assert exposition(metrics) == exposition(untouched)

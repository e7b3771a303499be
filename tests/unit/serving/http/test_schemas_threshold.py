"""The model's decision threshold as a contract: at any threshold in (0, 1) a response keeps its
own schema, its label follows P(positive) and the threshold, and the metrics see the same."""

from __future__ import annotations

import random

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.pipeline import Pipeline

from imdb_sentiment.runtime.compile import compile_pipeline
from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.http.responses import Predictions
from imdb_sentiment.serving.service_settings import load_settings
from tests.helpers import review_text


def mixed_reviews(n: int = 300) -> list[str]:
    """Halves of a negative and a positive review: P(positive) spread across (0, 1)."""
    rng = random.Random(7)
    return [f"{review_text(0, rng)} {review_text(1, rng)}"[: 200 + i] for i in range(n)]


@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_responses_and_metrics_hold_at_the_models_threshold(
    small_model: Pipeline, threshold: float
) -> None:
    scorer = compile_pipeline(small_model, threshold)
    # Reviews whose label's probability is below 0.5: P(positive) between the threshold and 0.5.
    low, high = sorted((threshold, 0.5))
    pool = mixed_reviews()
    texts = [t for t in pool if low <= scorer.score(t).p_positive < high][:4]
    texts += [t for t in pool if t not in texts][: 8 - len(texts)]
    assert len([t for t in texts if low <= scorer.score(t).p_positive < high]) >= 2
    settings = load_settings(max_text_chars=2000, max_batch_size=8, max_body_bytes=65536)
    client = create_app(settings, model=scorer).test_client()

    response = client.post("/api/v1/predict", json={"texts": texts})
    assert response.status_code == 200
    body = Predictions.model_validate(response.get_json())  # the schema it publishes
    for prediction in body.predictions:
        p_positive = prediction.scores.positive
        assert prediction.label == ("positive" if p_positive >= threshold else "negative")
        assert prediction.probability == getattr(prediction.scores, prediction.label)
        assert prediction.probability >= min(threshold, 1 - threshold) - 1e-6
    below_half = sum(p.probability < 0.5 for p in body.predictions)
    assert below_half >= 2

    assert client.get("/version").get_json()["model"]["threshold"] == threshold
    metrics = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(client.get("/metrics").get_data(True))
        for s in family.samples
    }
    confidence = "model_prediction_confidence"
    assert metrics[(f"{confidence}_count", ())] == len(texts)
    assert metrics[(f"{confidence}_bucket", (("le", "0.5"),))] >= below_half
    assert metrics[(f"{confidence}_sum", ())] == pytest.approx(
        sum(p.probability for p in body.predictions), abs=1e-4
    )
    positives = sum(p.label == "positive" for p in body.predictions)
    assert (
        metrics.get(("model_prediction_count_total", (("prediction", "positive"),)), 0) == positives
    )

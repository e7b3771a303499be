"""The route of one prediction request through the package, as it runs (traced), is the one
docs/architecture.md describes."""

from __future__ import annotations

from sklearn.pipeline import Pipeline

from harness.project import ROOT
from imdb_sentiment.core.config import FeatureParams
from imdb_sentiment.runtime.kernel import KERNEL
from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.service_settings import load_settings
from tests.helpers import files_run

# What runs for one JSON prediction with the prediction log on and a store (the default).
ROUTE = {
    "serving/http/app.py", "serving/logs.py", "serving/http/api.py", "serving/http/schemas.py",
    "serving/http/context.py", "serving/scoring.py",
    "runtime/scorer.py", "core/text.py", "core/labels.py", "store/records.py",
    "store/database.py", "store/spool.py", "store/flusher.py", "serving/predictions.py",
    "core/background.py",
    "serving/metrics.py", "serving/http/json_provider.py",
}  # fmt: skip


def traced_route(model: Pipeline) -> set[str]:
    """The package's files that run for one JSON prediction (after a warm-up request)."""
    app = create_app(load_settings(prediction_log_rate=1.0), model=model)
    client = app.test_client()
    client.post("/api/v1/predict", json={"text": "A warm-up: first calls import lazily."})
    response, ran = files_run(
        lambda: client.post("/api/v1/predict", json={"text": "A moving, well acted film."})
    )
    assert response.status_code == 200
    return ran


def test_a_prediction_runs_through_the_files_the_architecture_names(
    small_model: Pipeline,
) -> None:
    """The seed's cleaning (stop words) is not the kernel's: the Python path."""
    assert traced_route(small_model) == ROUTE
    doc = (ROOT / "docs" / "architecture.md").read_text()
    described = doc.split("**A prediction**", 1)[1].split("\n\n", 1)[0]
    assert not [f for f in ROUTE | {"runtime/kernel.py"} if f"`{f}`" not in described]
    assert f"**{len(ROUTE)} files**" in described


def test_with_the_kernel_the_review_is_cleaned_in_c() -> None:
    from tests.unit.runtime.test_kernel import model

    features = FeatureParams(tokens="whitespace", ngram_range=(1, 3), max_features=None)
    ran = traced_route(model(features))
    if KERNEL == "compiled":
        assert ran == ROUTE - {"core/text.py"} | {"runtime/kernel.py"}
    else:
        assert ran == ROUTE

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.pipeline import Pipeline

from imdb_sentiment.core import tracking
from imdb_sentiment.core.config import LiveGate
from imdb_sentiment.core.errors import GateError, PipelineError
from imdb_sentiment.core.evidence import PairedCounts
from imdb_sentiment.core.model_settings import load_model_settings
from imdb_sentiment.pipeline import registry
from imdb_sentiment.pipeline.registry import promotion
from imdb_sentiment.pipeline.registry import register as registration

NAME = "imdb-sentiment-test"


@pytest.fixture(autouse=True)
def _configured() -> None:
    tracking.configure(load_model_settings())


def register(model: Pipeline, accuracy: float) -> registration.RunRecord:
    return registration.log_and_register(
        model,
        model_name=NAME,
        experiment="unit",
        params={"train": {"C": 1.0}},
        metrics={"test_accuracy": accuracy},
        threshold=0.5,
        artifacts=[],
        dataset={"source": "generated"},
    )


def test_registered_model_is_the_whole_pipeline_and_scores_raw_text(small_model: Pipeline) -> None:
    record = register(small_model, 0.9)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(NAME, "staging").version) == record.version
    run = client.get_run(record.run_id)
    assert run.data.params["train.C"] == "1.0"
    assert run.data.tags["data.source"] == "generated"
    assert "git_commit" in run.data.tags

    loaded = mlflow.pyfunc.load_model(f"models:/{NAME}@staging")
    assert loaded.metadata.signature is not None
    texts = ["Wonderful, brilliant, loved it!", "Awful boring waste of time."]
    from_list = np.asarray(loaded.predict(texts))
    from_frame = np.asarray(loaded.predict(pd.DataFrame({"text": texts})))
    np.testing.assert_allclose(from_list, small_model.predict_proba(texts), atol=1e-12)
    np.testing.assert_allclose(from_frame, from_list)
    assert from_list[0, 1] > 0.5 > from_list[1, 1]


def test_promotion_gate_force_and_rollback(small_model: Pipeline) -> None:
    first = register(small_model, 0.90)
    result = promotion.promote(NAME, tolerance=0.01)
    assert (result.version, result.previous) == (first.version, None)

    second = register(small_model, 0.85)  # worse than production by more than the tolerance
    with pytest.raises(GateError, match="worse than production"):
        promotion.promote(NAME, tolerance=0.01)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(NAME, "production").version) == first.version

    forced = promotion.promote(NAME, tolerance=0.01, force=True)
    assert (forced.version, forced.previous) == (second.version, first.version)
    assert client.get_registered_model(NAME).tags[registry.PREVIOUS_TAG] == first.version

    assert promotion.rollback(NAME) == (second.version, first.version)
    assert str(client.get_model_version_by_alias(NAME, "production").version) == first.version


def test_within_tolerance_promotes(small_model: Pipeline) -> None:
    register(small_model, 0.90)
    promotion.promote(NAME, tolerance=0.01)
    third = register(small_model, 0.895)
    assert promotion.promote(NAME, tolerance=0.01).version == third.version


def test_min_accuracy_gate(small_model: Pipeline) -> None:
    register(small_model, 0.6)
    with pytest.raises(GateError, match="below the minimum"):
        promotion.promote(NAME, tolerance=0.01, min_accuracy=0.8)


def test_nothing_to_promote_or_roll_back() -> None:
    with pytest.raises(PipelineError, match="no 'staging' version"):
        promotion.promote(NAME, tolerance=0.01)
    with pytest.raises(PipelineError, match="no registered model"):
        promotion.rollback(NAME)


def _live(counts: PairedCounts) -> promotion.LiveEvidence:
    return lambda candidate, production: counts


def test_live_evidence_refuses_a_worse_candidate_inside_the_tolerance(
    small_model: Pipeline,
) -> None:
    first = register(small_model, 0.90)
    promotion.promote(NAME, tolerance=0.01)
    register(small_model, 0.90)  # offline: as good
    worse = PairedCounts(both_right=300, production_only=30, candidate_only=8)
    with pytest.raises(GateError, match=r"significantly worse .* McNemar exact p = 0\.000"):
        promotion.promote(NAME, tolerance=0.01, live=_live(worse), live_gate=LiveGate())
    production = MlflowClient().get_model_version_by_alias(NAME, "production")
    assert str(production.version) == first.version


def test_live_evidence_promotes_a_better_candidate_outside_the_tolerance(
    small_model: Pipeline,
) -> None:
    register(small_model, 0.90)
    promotion.promote(NAME, tolerance=0.01)
    second = register(small_model, 0.86)  # offline: worse by more than the tolerance
    better = PairedCounts(both_right=300, production_only=8, candidate_only=30)
    result = promotion.promote(NAME, tolerance=0.01, live=_live(better), live_gate=LiveGate())
    assert result.version == second.version and "better" in result.live


def test_too_few_live_pairs_leave_the_offline_gate_to_decide(small_model: Pipeline) -> None:
    register(small_model, 0.90)
    promotion.promote(NAME, tolerance=0.01)
    register(small_model, 0.86)
    few = PairedCounts(both_right=20, candidate_only=30)  # significant, but 50 < 200 pairs
    with pytest.raises(GateError, match="worse than production"):
        promotion.promote(NAME, tolerance=0.01, live=_live(few), live_gate=LiveGate())
    third = register(small_model, 0.90)
    result = promotion.promote(NAME, tolerance=0.01, live=_live(few), live_gate=LiveGate())
    assert result.version == third.version
    assert "too_few_pairs; the offline gate decides" in result.live


def test_the_whole_package_ships_with_the_model() -> None:
    """`code_paths`: the package itself, whichever room register.py sits in."""
    shipped = Path(registration.package_dir())
    assert (shipped / "__init__.py").exists() and shipped.name == "imdb_sentiment"
    assert {"core", "model", "pipeline", "runtime"} <= {p.name for p in shipped.iterdir()}


def test_the_scheduled_promotion_decides_on_the_sequential_test(small_model: Pipeline) -> None:
    """`promote --when-ready`: promote a non-inferior candidate, withdraw a worse one (its
    staging alias taken off), wait on little evidence — and after the longest wait, let the
    offline gate decide."""
    import time

    register(small_model, 0.90)
    promotion.promote(NAME, tolerance=0.01)
    gate, client = LiveGate(max_wait_hours=24), MlflowClient()

    def ready(counts: PairedCounts, hours: float = 0.0) -> promotion.Readiness:
        return promotion.when_ready(NAME, tolerance=0.005, min_accuracy=0.85, gate=gate,
                                    live=_live(counts), now=time.time() + hours * 3600)  # fmt: skip

    staged = register(small_model, 0.90)
    assert ready(PairedCounts(90, 4, 3, 3)).decision == "wait"
    assert ready(PairedCounts(900, 40, 10, 50)) == promotion.Readiness(
        "promote", staged.version, ready(PairedCounts(900, 40, 10, 50)).reason
    )
    withdrawn = ready(PairedCounts(900, 40, 50, 10))
    assert (withdrawn.decision, withdrawn.version) == ("withdraw", staged.version)
    with pytest.raises(Exception, match="alias"):
        client.get_model_version_by_alias(NAME, "staging")  # production no longer shadows it
    assert ready(PairedCounts()).decision == "none"  # nothing staged
    register(small_model, 0.90)
    late = ready(PairedCounts(90, 4, 3, 3), hours=25)
    assert late.decision == "promote" and "the offline gate passes it" in late.reason
    register(small_model, 0.80)  # below min_accuracy
    refused = ready(PairedCounts(90, 4, 3, 3), hours=25)
    assert refused.decision == "withdraw" and "below the minimum" in refused.reason

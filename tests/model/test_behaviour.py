"""Behavioural suite on the production model of the real pipeline; results go to MLflow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.model import behaviour

pytestmark = [pytest.mark.fulldata, pytest.mark.slow]
THRESHOLDS = {"minimum_functionality": 0.9, "negation": 0.8, "intensity": 0.75, "invariance": 0.9}


@pytest.fixture(scope="module")
def production(
    full_pipeline: tuple[Path, dict[str, str]],
) -> tuple[behaviour.Proba, list[str], str]:
    project, env = full_pipeline
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    version = MlflowClient().get_model_version_by_alias("imdb-sentiment", "production")
    model = mlflow.sklearn.load_model("models:/imdb-sentiment@production")

    def proba(texts: Sequence[str]) -> list[float]:
        return [float(p) for p in model.predict_proba(list(texts))[:, 1]]

    reviews = pd.read_parquet(project / "data/raw/test.parquet").sample(200, random_state=0).text
    return proba, reviews.tolist(), str(version.version)


@pytest.fixture(scope="module")
def results(production: tuple[behaviour.Proba, list[str], str]) -> dict[str, behaviour.SuiteResult]:
    proba, reviews, version = production
    suites = [
        behaviour.minimum_functionality(proba),
        behaviour.negation(proba),
        behaviour.intensity(proba),
        behaviour.invariance(proba, reviews),
    ]
    mlflow.set_experiment("behavioural-tests")
    with mlflow.start_run(run_name=f"behaviour-v{version}"):
        mlflow.set_tag("model_version", version)
        for suite in suites:
            mlflow.log_metric(f"{suite.name}_pass_rate", suite.rate)
            mlflow.log_text("\n".join(suite.failures), f"failures/{suite.name}.txt")
    return {suite.name: suite for suite in suites}


@pytest.mark.parametrize("suite", list(THRESHOLDS))
def test_pass_rate(results: dict[str, behaviour.SuiteResult], suite: str) -> None:
    result = results[suite]
    assert result.total >= 8
    assert result.rate >= THRESHOLDS[suite], (result.rate, result.failures)


def test_results_are_logged_to_mlflow(results: dict[str, behaviour.SuiteResult]) -> None:
    runs = mlflow.search_runs(experiment_names=["behavioural-tests"])
    assert len(runs) >= 1
    assert {f"metrics.{s}_pass_rate" for s in THRESHOLDS} <= set(runs.columns)


def test_suites_catch_a_broken_model() -> None:
    """The suites are not vacuous: a model that ignores its input fails them."""

    def constant(texts: Sequence[str]) -> list[float]:
        return [0.7 for _ in texts]

    assert behaviour.minimum_functionality(constant).rate == 0.5
    assert behaviour.negation(constant).rate == 0.0
    assert behaviour.intensity(constant).rate == 0.0

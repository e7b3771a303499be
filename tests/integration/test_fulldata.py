"""The real dataset (runs whenever IMDB_SOURCE is set; CI sets it)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

pytestmark = [pytest.mark.fulldata, pytest.mark.slow]


def test_full_dataset_validation_report(full_pipeline: tuple[Path, dict[str, str]]) -> None:
    project, _ = full_pipeline
    report = json.loads((project / "reports/data_validation.json").read_text())
    assert report["passed"] is True
    assert report["train"]["rows"] == report["test"]["rows"] == 25_000
    assert report["train"]["positive_share"] == report["test"]["positive_share"] == 0.5


def test_full_dataset_test_accuracy(full_pipeline: tuple[Path, dict[str, str]]) -> None:
    project, _ = full_pipeline
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert metrics["accuracy"] >= 0.91, metrics
    assert metrics["roc_auc"] >= 0.96, metrics


def test_full_dataset_model_is_in_production(full_pipeline: tuple[Path, dict[str, str]]) -> None:
    _, env = full_pipeline
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    version = MlflowClient().get_model_version_by_alias("imdb-sentiment", "production")
    assert float(version.tags["test_accuracy"]) >= 0.91

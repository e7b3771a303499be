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


def test_drift_on_real_reviews(full_pipeline: tuple[Path, dict[str, str]]) -> None:
    """Held-out test reviews (outside the reference sample) are no drift; the same reviews cut
    to their first sentence are."""
    import random
    import re

    import pandas as pd

    from harness.project import run
    from imdb_sentiment.core.config import load_params
    from imdb_sentiment.monitoring.drift import read_reviews

    project, env = full_pipeline
    p = load_params(project / "params.yaml").drift
    texts = read_reviews(project / "data/raw" / f"{p.reference}.parquet", "text")
    reference = set(random.Random(p.seed).sample(texts, min(p.reference_rows, len(texts))))
    held_out = [t for t in texts if t not in reference]
    held_out = random.Random(0).sample(held_out, 1000)  # the split is ordered by label
    pd.DataFrame({"text": held_out}).to_csv(project / "same.csv", index=False)
    first = [re.split(r"(?<=[.!?])\s", t)[0] for t in held_out]
    pd.DataFrame({"text": first}).to_parquet(project / "first.parquet")

    same = run(["imdb-sentiment", "drift", "same.csv", "--out", "drift-same"], project, env, False)
    assert same.returncode == 0, same.stdout + same.stderr
    shifted = run(["imdb-sentiment", "drift", "first.parquet"], project, env, check=False)
    assert shifted.returncode == 1, shifted.stdout + shifted.stderr
    summary = json.loads((project / "reports/drift/drift.json").read_text())
    drifted = {s["signal"] for s in summary["signals"] if s["drift"]}
    assert "text_chars" in drifted and (project / "reports/drift/drift.html").exists()

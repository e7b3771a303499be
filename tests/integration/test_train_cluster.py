"""Training's Spark route on a real standalone cluster (a master and a worker, each its own JVM
from the pinned PySpark's `bin/spark-class`), run as docs/model.md writes it, on the IMDB archive,
in a copy of the project the local route trained: the same vocabulary and matrices, the same
classifier (to the solver's rounding), the same test metrics, registered like the local route's
model and predicting like it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from harness.project import ROOT, bin_dir, run
from imdb_sentiment.core.io import SparseParts, load
from tests.integration.test_spark_cluster import doc_block

pytestmark = [pytest.mark.fulldata, pytest.mark.slow]
MODEL_DOC = ROOT / "docs/model.md"


def test_the_spark_route_trains_and_registers_the_local_routes_model(
    cluster: str, full_pipeline: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    local, env = full_pipeline
    project = tmp_path / "project"
    shutil.copytree(local, project, symlinks=True)
    spark_env = {
        **env,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",  # a registry of its own
        "SPARK_MASTER": cluster,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": str(bin_dir() / "python"),
        # `dvc exp run` commits the experiment: a git identity, which a CI container lacks.
        **{f"GIT_{who}_{what.upper()}": value for who in ("AUTHOR", "COMMITTER")
           for what, value in (("name", "CI"), ("email", "ci@example.invalid"))},
    }  # fmt: skip
    result = run(["bash", "-c", doc_block("train.engine=spark", MODEL_DOC)], project, spark_env)
    assert "featurize" in result.stdout and "train" in result.stdout, result.stdout
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["train"]["engine"] == "spark"

    # Featurized on the cluster: the local route's vocabulary and matrices.
    ours, theirs = (load(p / "data/features/featurizer.joblib") for p in (project, local))
    assert ours.named_steps["tfidf"].vocabulary_ == theirs.named_steps["tfidf"].vocabulary_
    for split in ("train", "test"):
        a, b = (SparseParts(p / "data/features" / split).to_csr() for p in (project, local))
        assert a.shape == b.shape and abs(a - b).max() == 0.0

    # Trained on the cluster: the same classifier, the same test metrics.
    model, reference = (load(p / "models/model.joblib") for p in (project, local))
    coef = np.abs(model.named_steps["clf"].coef_ - reference.named_steps["clf"].coef_).max()
    assert coef <= 1e-6
    metrics, expected = (json.loads((p / "reports/metrics.json").read_text())
                         for p in (project, local))  # fmt: skip
    assert abs(metrics["accuracy"] - expected["accuracy"]) <= 1e-9
    assert abs(metrics["accuracy"] - 0.9198) <= 0.003

    # Registered like the local route's model: its pyfunc and its compiled scorer (what the
    # service and batch scoring load) answer as the production model's do.
    test = pd.read_parquet(project / "data/raw/test.parquet").head(500)
    mlflow.set_tracking_uri(spark_env["MLFLOW_TRACKING_URI"])
    got = np.asarray(mlflow.pyfunc.load_model("models:/imdb-sentiment@staging").predict(test.text))
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    want = np.asarray(mlflow.pyfunc.load_model("models:/imdb-sentiment@production").predict(
        test.text))  # fmt: skip
    assert got.shape == want.shape == (500, 2) and np.abs(got - want).max() <= 1e-9
    source = tmp_path / "reviews.parquet"
    test[["id", "text"]].to_parquet(source)
    scored = {}
    for alias, route_env in (("staging", spark_env), ("production", env)):
        out = tmp_path / f"{alias}.parquet"
        run(["imdb-sentiment", "predict", str(source), str(out), "--model",
             f"models:/imdb-sentiment@{alias}"], project, route_env)  # fmt: skip
        scored[alias] = pd.read_parquet(out).probability.to_numpy()
    assert np.abs(scored["staging"] - scored["production"]).max() <= 1e-9
    assert np.abs(scored["staging"] - got[:, 1]).max() <= 1e-9

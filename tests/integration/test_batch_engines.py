"""Batch scoring on the real model and the 25,000 test reviews: the local engine and the Spark
engine (local mode) both equal `pipeline.predict_proba`; MLflow's own `spark_udf` on the same
registered model keeps working."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from harness.project import run
from tests.conftest import IN_CI, require_tool

pytestmark = [pytest.mark.fulldata, pytest.mark.slow]
MODEL = "models:/imdb-sentiment@production"


def require_pyspark() -> None:
    require_tool("java")
    if importlib.util.find_spec("pyspark") is None:
        if IN_CI:
            pytest.fail("PySpark is required in CI (make install-spark)")
        pytest.skip("PySpark not installed (make install-spark)")


@pytest.fixture(scope="module")
def reference(full_pipeline: tuple[Path, dict[str, str]]) -> tuple[pd.DataFrame, np.ndarray]:
    project, env = full_pipeline
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    test = pd.read_parquet(project / "data/raw/test.parquet")
    model = mlflow.sklearn.load_model(MODEL)
    return test, model.predict_proba(test.text.tolist())[:, 1]


def predict(project: Path, env: dict[str, str], *args: str) -> str:
    result = run(["imdb-sentiment", "predict", *args], project, env)
    return result.stdout


def test_local_engine_equals_the_pipeline(
    full_pipeline: tuple[Path, dict[str, str]],
    reference: tuple[pd.DataFrame, np.ndarray],
    tmp_path: Path,
) -> None:
    project, env = full_pipeline
    test, expected = reference
    out = tmp_path / "scored.parquet"
    stdout = predict(project, env, "data/raw/test.parquet", str(out), "--prefix", "pred_")
    assert "scored 25,000 reviews" in stdout
    scored = pd.read_parquet(out)
    assert (scored.id.to_numpy() == test.id.to_numpy()).all()
    assert np.abs(scored.pred_probability.to_numpy() - expected).max() <= 1e-9


def test_spark_engine_equals_the_pipeline_and_spark_udf_works(
    full_pipeline: tuple[Path, dict[str, str]],
    reference: tuple[pd.DataFrame, np.ndarray],
    tmp_path: Path,
) -> None:
    require_pyspark()
    project, env = full_pipeline
    test, expected = reference
    out = tmp_path / "scored.parquet"
    args = ["data/raw/test.parquet", str(out), "--prefix", "pred_", "--engine", "spark"]
    stdout = predict(project, {**env, "SPARK_MASTER": "local[2]"}, *args)
    assert "scored 25,000 reviews" in stdout
    assert (out / "_SUCCESS").exists()
    scored = pd.read_parquet(out).set_index(["label", "id"]).sort_index()
    want = pd.Series(expected, index=pd.MultiIndex.from_arrays([test.label, test.id])).sort_index()
    assert len(scored) == 25_000 and (scored.index == want.index).all()
    assert np.abs(scored.pred_probability.to_numpy() - want.to_numpy()).max() <= 1e-9

    # MLflow's own route, documented as the alternative: spark_udf on the registered model.
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = SparkSession.builder.master("local[2]").getOrCreate()
    try:
        udf = mlflow.pyfunc.spark_udf(
            spark, MODEL, env_manager="local", result_type="array<double>"
        )
        sample = spark.createDataFrame(test.head(200)[["text"]])
        rows = sample.select(udf("text").alias("p")).collect()
        via_udf = np.array([row.p[1] for row in rows])
        assert np.abs(via_udf - expected[:200]).max() <= 1e-9
    finally:
        spark.stop()

"""The Spark engine on a real standalone cluster: a master and a worker, each its own JVM started
from the pinned PySpark's `bin/spark-class`, the worker's executors in their own working directory.
Both routes of docs/batch.md "On a cluster" run exactly as the page writes them (read from it),
on real reviews; MLflow's `spark_udf` runs on the same cluster as the reference. The cluster's
processes are stopped by their ids."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from harness.project import ROOT, bin_dir, run
from harness.server import free_port
from tests.integration.test_batch_engines import MODEL

pytestmark = [pytest.mark.fulldata, pytest.mark.slow]
DOC = ROOT / "docs/batch.md"


def doc_block(marker: str, doc: Path = DOC) -> str:
    """The bash block of `doc` (docs/batch.md) that contains `marker`."""
    blocks = re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"one bash block with {marker!r} in {doc}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def reviews(
    full_pipeline: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """The 25,000 held-out reviews as pandas writes them (one row group) and the registered
    pipeline's P(positive) for each."""
    project, env = full_pipeline
    test = pd.read_parquet(project / "data/raw/test.parquet").rename(columns={"label": "truth"})
    path = tmp_path_factory.mktemp("spark-input") / "reviews.parquet"
    test.to_parquet(path, index=False)
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    expected = mlflow.sklearn.load_model(MODEL).predict_proba(test.text.tolist())[:, 1]
    return path, test, expected


def route_env(env: dict[str, str], master: str, source: Path, out: Path) -> dict[str, str]:
    return {
        **env,
        "SPARK_MASTER": master,
        "INPUT": str(source),
        "OUTPUT": str(out),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": str(bin_dir() / "python"),
    }


def scored(out: Path, column: str = "probability") -> pd.Series:
    frame = pd.read_parquet(out)
    return frame.set_index(["truth", "id"])[column].sort_index()


def assert_equal(got: pd.Series, test: pd.DataFrame, expected: np.ndarray) -> None:
    want = pd.Series(expected, index=pd.MultiIndex.from_arrays([test.truth, test.id]))
    want = want.sort_index()
    assert len(got) == len(want) and (got.index == want.index).all()
    assert np.abs(got.to_numpy() - want.to_numpy()).max() <= 1e-9


def test_both_documented_routes_on_a_standalone_cluster(
    cluster: str,
    full_pipeline: tuple[Path, dict[str, str]],
    reviews: tuple[Path, pd.DataFrame, np.ndarray],
    tmp_path: Path,
) -> None:
    project, env = full_pipeline
    source, test, expected = reviews
    import pyarrow.parquet as pq

    assert pq.ParquetFile(source).num_row_groups == 1  # as pandas writes 25,000 rows

    # Route 1: the CLI, as docs/batch.md writes it.
    cli_out = tmp_path / "cli-out.parquet"
    result = run(["bash", "-c", doc_block("--engine spark --master")], project,
                 route_env(env, cluster, source, cli_out))  # fmt: skip
    assert "scored 25,000 reviews" in result.stdout
    assert (cli_out / "_SUCCESS").exists()
    # One row group, yet scored by more than one task: one part file per task.
    assert len(list(cli_out.glob("part-*.parquet"))) >= 2
    via_cli = scored(cli_out)
    assert_equal(via_cli, test, expected)

    # Route 2: spark-submit with the package as --py-files, as docs/batch.md writes it.
    submit_out = tmp_path / "submit-out.parquet"
    result = run(["bash", "-c", doc_block("spark-submit --master")], project,
                 route_env(env, cluster, source, submit_out))  # fmt: skip
    assert "scored 25,000 reviews" in result.stdout
    assert len(list(submit_out.glob("part-*.parquet"))) >= 2
    assert_equal(scored(submit_out), test, expected)

    # Executors with the package installed (this venv's Python): no zip, the compiled kernel.
    installed_out = tmp_path / "installed-out.parquet"
    result = run(["bash", "-c", doc_block("--installed-package")], project,
                 route_env(env, cluster, source, installed_out))  # fmt: skip
    assert "scored 25,000 reviews" in result.stdout
    assert_equal(scored(installed_out), test, expected)

    # The local engine on the same file gives the same numbers.
    local_out = tmp_path / "local.parquet"
    run(["imdb-sentiment", "predict", str(source), str(local_out)], project, env)
    local = pd.read_parquet(local_out).set_index(["truth", "id"]).probability.sort_index()
    assert np.abs(local.to_numpy() - via_cli.to_numpy()).max() <= 1e-9


def test_mlflow_spark_udf_on_the_same_cluster(
    cluster: str,
    full_pipeline: tuple[Path, dict[str, str]],
    reviews: tuple[Path, pd.DataFrame, np.ndarray],
) -> None:
    """The reference route of docs/batch.md, on the same cluster."""
    _, env = full_pipeline
    _, test, expected = reviews
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    spark = SparkSession.builder.master(cluster).appName("spark-udf-reference").getOrCreate()
    try:
        udf = mlflow.pyfunc.spark_udf(
            spark, MODEL, env_manager="local", result_type="array<double>"
        )
        sample = spark.createDataFrame(test.head(500)[["id", "text"]])
        rows = sample.select("id", udf("text").alias("p")).collect()
        via_udf = np.array([row.p[1] for row in rows])
        assert [row.id for row in rows] == test.head(500).id.tolist()
        assert np.abs(via_udf - expected[:500]).max() <= 1e-9
    finally:
        spark.stop()


def test_cluster_failures_read_as_one_line(
    cluster: str,
    full_pipeline: tuple[Path, dict[str, str]],
    reviews: tuple[Path, pd.DataFrame, np.ndarray],
    tmp_path: Path,
) -> None:
    project, env = full_pipeline
    source = reviews[0]
    command = doc_block("--engine spark --master")

    # A master nobody listens on: at once, one line.
    closed = f"spark://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run(["bash", "-c", command], project,
                 route_env(env, closed, source, tmp_path / "a.parquet"), check=False)  # fmt: skip
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1] == f"error: cannot reach the Spark master {closed}"
    )
    assert time.monotonic() - started < 60
    assert "Traceback" not in result.stderr and "py4j" not in result.stderr

    # Executors whose Python lacks numpy, pandas and pyarrow: a bare venv of the same Python.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")],
                   check=True)  # fmt: skip
    bare = tmp_path / "bare/bin/python"
    bare_env = {
        **route_env(env, cluster, source, tmp_path / "b.parquet"),
        "PYSPARK_PYTHON": str(bare),
    }
    result = run(["bash", "-c", command], project, bare_env, check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: Spark executors cannot import '\w+': .*docs/batch\.md\)", last)
    assert "Traceback" not in result.stderr and "Py4JJavaError" not in result.stderr
    assert not (tmp_path / "b.parquet").exists()

"""The Spark route's featurize on a real standalone cluster, where `max_features` binds: the cut
is found on the executors (a histogram, then one count's hashes), and the vocabulary and the
matrices equal the local route's, ties at the cut included; and the driver JVM the stages start
has the small heap and serial collector `pipeline.cluster.driver_conf` asks for."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.project import run
from imdb_sentiment.cli.pipeline import spark_context
from imdb_sentiment.core.io import SparseParts, load
from imdb_sentiment.pipeline.cluster import featurize_on_spark
from imdb_sentiment.pipeline.featurize import run_featurize, vectorizers
from tests.helpers import SEED_CLEANING
from tests.unit.pipeline.test_featurize import BASE, corpus

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "change",
    [
        {"binary": False, "max_features": 700, "min_df": 1},
        {"tokens": "words", "char_ngram_range": (2, 4), "char_max_features": 300, "min_df": 2},
    ],
)
def test_the_cut_on_the_cluster_keeps_the_local_routes_terms(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]
) -> None:
    monkeypatch.setenv("SPARK_MASTER", cluster)
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    features = BASE.model_copy(update={"chunk_rows": 97, **change})
    for name, texts in (("train", corpus(900, seed=11)), ("test", corpus(100, seed=12))):
        pd.DataFrame({"text": texts}).to_parquet(tmp_path / f"{name}.parquet", row_group_size=97)
    train, test = tmp_path / "train.parquet", tmp_path / "test.parquet"
    run_featurize(train, test, tmp_path / "local", SEED_CLEANING, features)
    with spark_context("featurize") as sc:
        featurize_on_spark(sc, train, test, tmp_path / "spark", SEED_CLEANING, features)
    ours, theirs = (load(tmp_path / route / "featurizer.joblib") for route in ("spark", "local"))
    names = ours.named_steps["tfidf"].get_feature_names_out()
    assert list(names) == list(theirs.named_steps["tfidf"].get_feature_names_out())
    cut = [part for part in vectorizers(ours) if part.max_features is not None]
    assert cut and all(len(part.vocabulary_) == part.max_features for part in cut)
    for split in ("train", "test"):
        a, b = (SparseParts(tmp_path / route / split).to_csr() for route in ("spark", "local"))
        assert a.shape == b.shape and abs(a - b).max() == 0.0


DRIVER_FACTS = """
import json, os
from imdb_sentiment.cli.pipeline import spark_context
with spark_context("train") as sc:
    jvm = sc._jvm
    beans = jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    print(json.dumps({"heap": jvm.java.lang.Runtime.getRuntime().maxMemory(),
                      "collectors": [beans.get(i).getName() for i in range(beans.size())],
                      "cached": jvm.java.lang.System.getProperty("jdk.nio.maxCachedBufferSize"),
                      "arenas": jvm.java.lang.System.getenv("MALLOC_ARENA_MAX"),
                      "here": os.environ.get("MALLOC_ARENA_MAX")}))
"""


@pytest.mark.parametrize(("memory", "heap"), [("", 512 << 20), ("1g", 1 << 30)])
def test_the_stages_driver_jvm_is_small_unless_told_otherwise(
    cluster: str, tmp_path: Path, memory: str, heap: int
) -> None:
    """The driver JVM the stages start really runs with `driver_conf`'s heap, collector and
    buffer cache and `driver_environment`'s allocator (settings given once a JVM runs are
    ignored silently); SPARK_DRIVER_MEMORY wins; the stage's own environment stays as it was."""
    env = {"SPARK_MASTER": cluster, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_DRIVER_MEMORY": memory}
    said = run([sys.executable, "-c", DRIVER_FACTS], tmp_path, env).stdout
    facts = json.loads(said.strip().splitlines()[-1])
    assert 0.9 * heap <= facts["heap"] <= heap
    assert facts["collectors"] == ["Copy", "MarkSweepCompact"]  # -XX:+UseSerialGC
    assert facts["cached"] == "262144" and facts["arenas"] == "2" and facts["here"] is None

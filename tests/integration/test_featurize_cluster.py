"""The Spark route's featurize on a real standalone cluster, where `max_features` binds: the cut
is found on the executors (a histogram, then one count's hashes), and the vocabulary and the
matrices equal the local route's, ties at the cut included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

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

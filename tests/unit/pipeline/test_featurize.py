"""The chunked featurize stage gives exactly what sklearn's one-pass `fit` gives on the whole
corpus (vocabulary, weights, matrices), whatever the chunk size; `max_features` keeps the most
frequent terms with ties at the cut broken by hash (sklearn's own tie-break is its unstable
sort's)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

from imdb_sentiment.core.config import FeatureParams
from imdb_sentiment.core.errors import DataError
from imdb_sentiment.core.io import SparseParts, load
from imdb_sentiment.model.features import build_featurizer
from imdb_sentiment.model.vocabulary import hash_terms
from imdb_sentiment.pipeline.featurize import run_featurize, vectorizers
from tests.helpers import SEED_CLEANING

WORDS = [a + b + c for a in "bdfgk" for b in "aeiou" for c in "lmnprstvz"][:200]
ZIPF = [1.0 / (rank + 1) for rank in range(len(WORDS))]


def corpus(n: int, seed: int) -> list[str]:
    """Reviews of Zipf-distributed words: many n-grams below any min_df, some far above."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choices(WORDS, ZIPF, k=rng.randint(5, 60))) + rng.choice([".", "!", " 8/10"])
        for _ in range(n)
    ]


def stage(tmp_path: Path, train: list[str], test: list[str], features: FeatureParams) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, texts in (("train", train), ("test", test)):
        pd.DataFrame({"text": texts}).to_parquet(tmp_path / f"{name}.parquet", row_group_size=97)
    done = run_featurize(tmp_path / "train.parquet", tmp_path / "test.parquet", tmp_path / "out",
                         SEED_CLEANING, features)  # fmt: skip
    featurizer = load(tmp_path / "out/featurizer.joblib")
    x_train = SparseParts(tmp_path / "out/train").to_csr()
    x_test = SparseParts(tmp_path / "out/test").to_csr()
    assert (done.train_rows, done.test_rows) == (len(train), len(test))
    return featurizer, x_train, x_test


def assert_same(a: sp.spmatrix, b: sp.spmatrix) -> None:
    assert a.shape == b.shape
    assert abs(a - b).max() <= 1e-12 if a.nnz or b.nnz else True


def most_frequent(part: TfidfVectorizer, cleaned: list[str]) -> list[str]:
    """The part's `max_features` terms by the documented rule, from sklearn's full counts:
    corpus count descending, then hash ascending."""
    counter = clone(part).set_params(max_features=None, use_idf=False, norm=None,
                                     sublinear_tf=False)  # fmt: skip
    counts = counter.fit_transform(cleaned)
    names = counter.get_feature_names_out()
    tf = np.asarray(counts.sum(axis=0)).ravel()
    return sorted(names[np.lexsort((hash_terms(list(names)), -tf))[: part.max_features]])


def sklearn_reference(features: FeatureParams, train: list[str]) -> Pipeline:
    """sklearn's fit, where `max_features` binds given the rule's terms as a fixed vocabulary."""
    reference = build_featurizer(SEED_CLEANING, features)
    cleaned = reference.named_steps["clean"].transform(train)
    for part in vectorizers(reference):
        if part.max_features is not None:
            part.set_params(vocabulary=most_frequent(part, cleaned), max_features=None)
    reference.fit(train)
    return reference


BASE = FeatureParams(tokens="whitespace", ngram_range=(1, 3), max_features=None, min_df=3,
                     binary=True, use_idf=False, norm=None, sublinear_tf=False)  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {},  # the project's params: binary 1-3-grams, min_df 3
        {"binary": False, "use_idf": True, "norm": "l2", "sublinear_tf": True, "max_df": 0.3},
        {"binary": False, "max_features": 700, "min_df": 1},  # ties at the cut: by hash
        {"tokens": "words", "char_ngram_range": (2, 4), "char_max_features": 300, "min_df": 2},
        {"chunk_rows": 1},
    ],
)
def test_chunked_featurize_equals_sklearn_fit_on_the_whole_corpus(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    features = BASE.model_copy(update={"chunk_rows": 53, **change})
    train, test = corpus(600, seed=1), corpus(120, seed=2)
    featurizer, x_train, x_test = stage(tmp_path, train, test, features)
    reference = sklearn_reference(features, train)
    assert_same(x_train, reference.transform(train))
    assert_same(x_test, reference.transform(test))
    assert_same(featurizer.transform(test), x_test)
    names = featurizer.named_steps["tfidf"].get_feature_names_out()
    assert list(names) == list(reference.named_steps["tfidf"].get_feature_names_out())
    assert len(x_train.indptr) - 1 == len(train) and x_train.shape[1] == len(names)


def test_the_chunk_size_never_changes_the_features(tmp_path: Path) -> None:
    train = corpus(300, seed=3)
    _, one, _ = stage(tmp_path / "a", train, train[:5], BASE.model_copy(update={"chunk_rows": 7}))
    _, many, _ = stage(
        tmp_path / "b", train, train[:5], BASE.model_copy(update={"chunk_rows": 1000})
    )
    assert_same(one, many)
    assert len(list((tmp_path / "a/out/train").glob("part-*.npz"))) == 43


def test_nothing_left_after_pruning_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    features = BASE.model_copy(update={"min_df": 2})
    with pytest.raises(DataError, match="lower min_df"):  # every word in one review only
        stage(tmp_path, WORDS[:50], corpus(5, seed=5), features)
    assert (
        not (tmp_path / "out/train").exists() and not (tmp_path / "out/featurizer.joblib").exists()
    )


def test_a_rerun_replaces_the_parts(tmp_path: Path) -> None:
    stage(tmp_path / "a", corpus(200, seed=6), corpus(5, seed=7), BASE)
    out = tmp_path / "a" / "out"
    smaller = BASE.model_copy(update={"chunk_rows": 500})
    _, x_train, _ = stage(tmp_path / "a", corpus(100, seed=8), corpus(5, seed=7), smaller)
    assert x_train.shape[0] == 100 and len(list((out / "train").glob("part-*"))) == 1
    assert np.isfinite(x_train.data).all()

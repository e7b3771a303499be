"""Featurize, train and evaluate worker functions on tiny in-memory data."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import skops.io as sio
from sklearn.pipeline import Pipeline

from imdb_sentiment.core.config import FeatureParams, TrainParams
from imdb_sentiment.core.errors import DataError
from imdb_sentiment.core.io import SparseParts, load
from imdb_sentiment.core.labels import DEFAULT_THRESHOLD
from imdb_sentiment.core.text import CleanOptions
from imdb_sentiment.model.classifier import NBLogisticRegression, nb_log_count_ratio
from imdb_sentiment.pipeline.evaluate import (
    classification_metrics,
    curve_data,
    evaluate_model,
    expected_calibration_error,
    save_plots,
)
from imdb_sentiment.pipeline.featurize import run_featurize
from imdb_sentiment.pipeline.registry.register import TRUSTED_TYPES
from imdb_sentiment.pipeline.train import assemble, movie_groups, train, validation_split
from tests.helpers import SEED_CLEANING, tiny_texts

FEATURES = FeatureParams(max_features=None, ngram_range=(1, 2), min_df=1)


@pytest.fixture
def featurize(tmp_path: Path) -> Any:
    """The featurize stage on texts: (featurizer, train parts, test matrix)."""
    runs = iter(range(100))

    def run(train_texts: list[str], test_texts: list[str], clean: CleanOptions,
            features: FeatureParams) -> tuple[Pipeline, SparseParts, sp.csr_matrix]:  # fmt: skip
        folder = tmp_path / f"run-{next(runs)}"
        folder.mkdir()
        for name, texts in (("train", train_texts), ("test", test_texts)):
            pd.DataFrame({"text": texts}).to_parquet(folder / f"{name}.parquet")
        run_featurize(folder / "train.parquet", folder / "test.parquet", folder / "out",
                      clean, features)  # fmt: skip
        featurizer = load(folder / "out/featurizer.joblib")
        return (featurizer, SparseParts(folder / "out/train"),
                SparseParts(folder / "out/test").to_csr())  # fmt: skip

    return run


def test_featurize_returns_sparse_matrices_fitted_on_train_only(featurize: Any) -> None:
    texts, _ = tiny_texts(40)
    featurizer, parts, x_test = featurize(texts, ["unseenword film"], SEED_CLEANING, FEATURES)
    x_train = parts.to_csr()
    assert sp.issparse(x_train) and sp.issparse(x_test)
    assert x_train.shape[0] == 40 and x_test.shape == (1, x_train.shape[1])
    vocabulary = featurizer.named_steps["tfidf"].vocabulary_
    assert "unseenword" not in vocabulary and "film" in vocabulary
    assert not hasattr(featurizer.named_steps["tfidf"], "stop_words_")


def test_char_ngrams_are_added_when_configured(featurize: Any) -> None:
    texts, _ = tiny_texts(20)
    params = FEATURES.model_copy(update={"char_ngram_range": (2, 3)})
    _, words_and_chars, _ = featurize(texts, texts[:1], SEED_CLEANING, params)
    _, words_only, _ = featurize(texts, texts[:1], SEED_CLEANING, FEATURES)
    assert words_and_chars.shape[1] > words_only.shape[1]


def test_compact_vectorizer_round_trips_through_pickle_and_skops(
    tmp_path: Path, featurize: Any
) -> None:
    texts, _ = tiny_texts(20)
    featurizer, parts, _ = featurize(texts, texts[:1], SEED_CLEANING, FEATURES)
    x_train = parts.to_csr()
    expected = featurizer.transform(texts)
    restored = pickle.loads(pickle.dumps(featurizer))
    assert abs(restored.transform(texts) - expected).max() == 0
    assert abs(expected - x_train).max() < 1e-12
    assert featurizer.named_steps["tfidf"].vocabulary_  # the live object keeps its vocabulary
    sio.dump(featurizer, tmp_path / "f.skops")
    # Everything skops does not trust by default must be on our explicit allow-list.
    assert set(sio.get_untrusted_types(file=tmp_path / "f.skops")) <= set(TRUSTED_TYPES)
    loaded = sio.load(tmp_path / "f.skops", trusted=TRUSTED_TYPES)
    assert abs(loaded.transform(texts) - expected).max() == 0


def test_nb_ratio_points_towards_the_class_a_feature_marks() -> None:
    x = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float))
    ratio = nb_log_count_ratio(x, np.array([1, 1, 0, 0]), alpha=1.0)
    assert ratio[0] > 0 > ratio[1]


def test_nb_lr_without_nb_is_plain_logistic_regression(featurize: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    texts, labels = tiny_texts(40)
    _, parts, _ = featurize(texts, texts[:1], SEED_CLEANING, FEATURES)
    x = parts.to_csr()
    ours = NBLogisticRegression(C=3.0, nb=False).fit(x, np.array(labels))
    plain = LogisticRegression(C=3.0, max_iter=1000).fit(x, labels)
    np.testing.assert_allclose(ours.predict_proba(x), plain.predict_proba(x), atol=1e-9)


def test_validation_split_is_stratified_and_disjoint() -> None:
    y = np.array([0, 1] * 50)
    fit_idx, val_idx = validation_split(y, 0.2, seed=0)
    assert len(val_idx) == 20 and y[val_idx].mean() == 0.5
    assert not set(fit_idx) & set(val_idx)


def test_grouped_validation_split_keeps_each_movie_on_one_side() -> None:
    y = np.array([0, 1] * 100)
    movies = np.array([f"tt{i // 4}" for i in range(200)])  # 50 movies, 4 reviews each
    fit_idx, val_idx = validation_split(y, 0.1, seed=0, groups=movies)
    assert not set(movies[fit_idx]) & set(movies[val_idx])
    assert len(fit_idx) + len(val_idx) == 200 and 12 <= len(val_idx) <= 28
    assert abs(y[val_idx].mean() - 0.5) <= 0.1


def test_movie_groups_need_every_movie() -> None:
    assert list(movie_groups(pd.Series(["tt1", "tt2"]))) == ["tt1", "tt2"]
    with pytest.raises(DataError, match="val_split: random"):
        movie_groups(pd.Series(["tt1", ""]))


def test_train_assembles_the_whole_pipeline(featurize: Any) -> None:
    texts, labels = tiny_texts(80)
    featurizer, x, _ = featurize(texts, texts[:1], SEED_CLEANING, FEATURES)
    params = TrainParams(C=10.0, nb_weighting=True, nb_normalize=True, val_size=0.25)
    classifier, report = train(x, np.array(labels), params, 0.5)
    model = assemble(featurizer, classifier)
    assert [name for name, _ in model.steps] == ["clean", "tfidf", "clf"]
    assert report["validation"]["accuracy"] >= 0.9
    assert report["n_validation"] == 20
    # The pipeline scores raw text directly: cleaning is inside the artifact.
    proba = model.predict_proba(["Wonderful, brilliant, loved it!", "Awful boring waste."])
    assert proba[0, 1] > 0.5 > proba[1, 1]


def test_metrics_and_calibration() -> None:
    y = np.array([0, 0, 1, 1])
    perfect = classification_metrics(y, np.array([0.0, 0.1, 0.9, 1.0]), 0.5)
    assert perfect["accuracy"] == 1.0 and perfect["roc_auc"] == 1.0
    assert set(perfect) == {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "brier",
        "ece",
    }
    wrong = classification_metrics(y, np.array([0.9, 0.9, 0.1, 0.1]), 0.5)
    assert wrong["accuracy"] == 0.0 and wrong["brier"] > 0.5
    assert expected_calibration_error(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.0
    assert expected_calibration_error(y, np.array([1.0, 1.0, 1.0, 1.0])) == 0.5


def test_evaluation_outputs(tmp_path: Path, small_model: Pipeline) -> None:
    texts, labels = tiny_texts(30, seed=9)
    x = small_model[:-1].transform(texts)
    result, proba = evaluate_model(small_model, x, np.array(labels), texts, 0.5)
    assert result["accuracy"] >= 0.9 and proba.shape == (30,)
    curves = curve_data(np.array(labels), proba, 0.5)
    assert {"roc", "precision_recall", "calibration", "confusion"} <= set(curves)
    assert len(curves["confusion"]) == 30
    written = save_plots(np.array(labels), proba, tmp_path, DEFAULT_THRESHOLD)
    assert {p.name for p in written} == {
        "confusion_matrix.png",
        "roc_curve.png",
        "precision_recall_curve.png",
        "calibration_curve.png",
    }
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)


def test_short_text_set_takes_verdict_sentences_of_extreme_reviews() -> None:
    import pandas as pd

    from imdb_sentiment.pipeline.evaluate import short_text_set

    frame = pd.DataFrame(
        {
            "rating": [10, 1, 7, 2, 9],
            "label": [1, 0, 1, 0, 1],
            "text": [
                "Long setup here. It was a wonderful film overall!",
                "Meh.<br /><br />The worst thing I have ever watched.",
                "Fine. A nice enough film for sure.",  # rating 7: not extreme
                "Bad. Too short.",  # last sentence under 4 words
                "Ok. " + "word " * 40 + "end.",  # last sentence too long
            ],
        }
    )
    short = short_text_set(frame)
    assert short.to_dict("records") == [
        {"text": "The worst thing I have ever watched.", "label": 0},
        {"text": "It was a wonderful film overall!", "label": 1},
    ]

"""Train: fit the classifier on featurized train data, report validation metrics, assemble the
full model pipeline (cleaning → TF-IDF → classifier)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit
from sklearn.model_selection import StratifiedGroupKFold, train_test_split
from sklearn.pipeline import Pipeline

from imdb_sentiment.core.config import TrainParams
from imdb_sentiment.core.errors import DataError
from imdb_sentiment.model.classifier import (
    NBLogisticRegression,
    Passes,
    RowParts,
    build_classifier,
    decisions,
    fit_streamed,
)
from imdb_sentiment.pipeline.evaluate import classification_metrics


def validation_split(
    y: NDArray[Any], val_size: float, seed: int, groups: NDArray[Any] | None = None
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Stratified indices (fit, validation), carved from the training set only.

    With `groups` (the movie of each review) no group straddles the two parts, as in the
    official train/test split: reviews of one movie share names and plot words, and a random
    split that leaks them scores ~1 % higher than the test split does."""
    index = np.arange(len(y))
    if groups is None:
        fit_idx, val_idx = train_test_split(
            index, test_size=val_size, random_state=seed, stratify=y
        )
        return np.sort(fit_idx), np.sort(val_idx)
    # One fold of k ≈ 1 / val_size; tiny datasets with fewer movies get fewer, larger folds.
    n_splits = min(round(1 / val_size), len(set(groups)))
    if n_splits < 2:
        raise DataError("a validation split grouped by movie needs reviews of 2+ movies")
    fit_idx, val_idx = group_folds(y, groups, n_splits, seed)[0]
    return np.sort(fit_idx), np.sort(val_idx)


def group_folds(
    labels: NDArray[Any], groups: NDArray[Any], folds: int, seed: int
) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Stratified folds in which every group (movie) sits in exactly one validation part."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels, groups))


def movie_groups(movies: Any) -> NDArray[Any]:
    """The movie column as split groups; a source without urls_*.txt cannot group."""
    groups = np.asarray(movies, dtype=object)
    if len(groups) == 0 or (groups == "").any():
        raise DataError(
            "train.val_split: movie needs each review's movie (the archive's urls_*.txt); "
            "this source has none — set train.val_split: random"
        )
    return groups


def predict_rows(
    clf: NBLogisticRegression, X: RowParts | Passes, rows: NDArray[np.intp]
) -> NDArray[np.float64]:
    """P(positive) for the given rows, a block at a time wherever the blocks are."""
    return np.asarray(expit(decisions(clf, X)[rows]))


def train(
    x_train: RowParts | Passes,
    y_train: NDArray[Any],
    params: TrainParams,
    threshold: float,
    groups: NDArray[Any] | None = None,
) -> tuple[NBLogisticRegression, dict[str, Any]]:
    """Select on a validation split (grouped by `groups` if given), then refit on all of
    train; return the classifier and report (validation metrics at the model's `threshold`).
    The features are read a block of rows at a time (`fit_streamed`), here or on a
    cluster's executors (`pipeline.cluster.SparkPasses`)."""
    fit_idx, val_idx = validation_split(y_train, params.val_size, params.seed, groups)
    started = time.perf_counter()
    chosen = np.zeros(len(y_train), dtype=np.uint8)  # 0/1 weights as bytes (RowData)
    chosen[fit_idx] = 1
    candidate = fit_streamed(build_classifier(params), x_train, y_train, chosen)
    val_proba = predict_rows(candidate, x_train, val_idx)
    report: dict[str, Any] = {
        "validation": classification_metrics(y_train[val_idx], val_proba, threshold),
        "n_train": len(y_train),
        "n_validation": len(val_idx),
        "validation_split": "random" if groups is None else "grouped",
        "n_features": int(x_train.shape[1]),
    }
    del candidate, val_proba, chosen, fit_idx, val_idx  # the refit's solver state comes next
    final = fit_streamed(build_classifier(params), x_train, y_train,
                         np.ones(len(y_train), dtype=np.uint8))  # fmt: skip
    report["train_seconds"] = round(time.perf_counter() - started, 2)
    return final, report


def assemble(featurizer: Pipeline, classifier: NBLogisticRegression) -> Pipeline:
    """The whole model: cleaning → TF-IDF → classifier."""
    return Pipeline([*featurizer.steps, ("clf", classifier)])

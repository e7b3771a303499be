"""Train: fit the classifier on featurized train data, report validation metrics, assemble the
full model pipeline (cleaning → TF-IDF → classifier)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from imdb_sentiment.classifier import build_classifier
from imdb_sentiment.config import TrainParams
from imdb_sentiment.evaluate import classification_metrics


def validation_split(
    y: NDArray[Any], val_size: float, seed: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Stratified indices (fit, validation), carved from the training set only."""
    index = np.arange(len(y))
    fit_idx, val_idx = train_test_split(index, test_size=val_size, random_state=seed, stratify=y)
    return np.sort(fit_idx), np.sort(val_idx)


def train(
    featurizer: Pipeline, x_train: sp.csr_matrix, y_train: NDArray[Any], params: TrainParams
) -> tuple[Pipeline, dict[str, Any]]:
    """Select on a validation split, then refit on all of train; return model and report."""
    fit_idx, val_idx = validation_split(y_train, params.val_size, params.seed)
    started = time.perf_counter()
    candidate = build_classifier(params).fit(x_train[fit_idx], y_train[fit_idx])
    val_proba = candidate.predict_proba(x_train[val_idx])[:, 1]
    report: dict[str, Any] = {
        "validation": classification_metrics(y_train[val_idx], val_proba),
        "n_train": len(y_train),
        "n_validation": len(val_idx),
        "n_features": int(x_train.shape[1]),
    }
    final = build_classifier(params).fit(x_train, y_train)
    report["train_seconds"] = round(time.perf_counter() - started, 2)
    model = Pipeline([*featurizer.steps, ("clf", final)])
    return model, report

"""Model selection: k-fold cross-validation of parameter variants, on the training split only.

Folds are grouped by movie (like the official train/test split, no movie on both sides of a
fold), so the scores predict test accuracy instead of overrating n-grams that name a movie's
cast and plot. A variant is a partial `params.yaml` (clean / features / train sections) laid
over the project's parameters; `imdb-sentiment select` runs a file of them and logs each to
MLflow. The test split is never read here.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imdb_sentiment.core.config import MODEL_SECTIONS, Params, parse_params
from imdb_sentiment.core.errors import ConfigError
from imdb_sentiment.model.classifier import build_classifier
from imdb_sentiment.model.features import TextCleaner, build_vectorizer, parallel_map
from imdb_sentiment.pipeline.train import group_folds

SECTIONS = MODEL_SECTIONS  # what a variant may change


@dataclass(frozen=True)
class CVResult:
    name: str
    fold_accuracy: tuple[float, ...]
    n_features: int  # mean over folds
    seconds: float

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.fold_accuracy))

    @property
    def std_error(self) -> float:
        folds = np.asarray(self.fold_accuracy)
        return float(folds.std(ddof=1) / np.sqrt(len(folds))) if len(folds) > 1 else 0.0


def apply_variant(base: Mapping[str, Any], name: str, override: Any) -> Params:
    """`base` params with one variant's sections laid over it, validated like params.yaml."""
    if not isinstance(override, dict) or set(override) - set(SECTIONS):
        raise ConfigError(f"variant {name!r} may only set {', '.join(SECTIONS)}")
    merged = copy.deepcopy(dict(base))
    for section, values in override.items():
        if not isinstance(values, dict):
            raise ConfigError(f"variant {name!r}: {section} must be a mapping")
        merged[section] = {**(merged.get(section) or {}), **values}
    return parse_params(merged, origin=f"variant {name!r}")


def cross_validate(
    name: str,
    texts: Sequence[str],
    labels: NDArray[Any],
    folds: Sequence[tuple[NDArray[np.intp], NDArray[np.intp]]],
    params: Params,
) -> CVResult:
    """Fit cleaning → vectorizer → classifier on each fold's fit part, score its other part.

    The vocabulary is refitted per fold: a vocabulary that had seen the held-out reviews
    would leak which of their n-grams are frequent enough to keep."""
    started = time.perf_counter()
    cleaner = TextCleaner(params.clean)
    cleaned = np.asarray(parallel_map(cleaner.transform, texts), dtype=object)
    accuracies, widths = [], []
    for fit, held_out in folds:
        vectorizer = build_vectorizer(params.features)
        x_fit = vectorizer.fit_transform(list(cleaned[fit]))
        x_val = vectorizer.transform(list(cleaned[held_out]))
        classifier = build_classifier(params.train).fit(x_fit, labels[fit])
        accuracies.append(float(np.mean(classifier.predict(x_val) == labels[held_out])))
        widths.append(x_fit.shape[1])
    seconds = time.perf_counter() - started
    return CVResult(name, tuple(accuracies), int(np.mean(widths)), round(seconds, 1))


def select(
    variants: Mapping[str, Params],
    texts: Sequence[str],
    labels: NDArray[Any],
    groups: NDArray[Any],
    folds: int = 5,
    seed: int = 42,
    log: Callable[[CVResult, Params], str] | None = None,
) -> list[dict[str, Any]]:
    """Cross-validate every variant on the same grouped folds; `log` records each result
    (MLflow in the CLI) and returns a run id. Rows in variant order."""
    splits = group_folds(labels, groups, folds, seed)
    rows = []
    for name, params in variants.items():
        result = cross_validate(name, texts, labels, splits, params)
        rows.append(
            {
                "variant": name,
                "cv_accuracy": result.accuracy,
                "cv_std_error": result.std_error,
                "fold_accuracy": list(result.fold_accuracy),
                "n_features": result.n_features,
                "seconds": result.seconds,
                "run_id": log(result, params) if log else None,
            }
        )
    return rows


SELECTION_EXPERIMENT = "model-selection"


def log_selection(result: CVResult, params: Params) -> str:
    """One MLflow run per cross-validated variant (`imdb-sentiment select`); its run id."""
    import mlflow

    from imdb_sentiment.core.config import flatten
    from imdb_sentiment.core.tracking import git_commit

    mlflow.set_experiment(SELECTION_EXPERIMENT)
    with mlflow.start_run(run_name=result.name) as run:
        dumped = params.model_dump(mode="json", by_alias=True)
        for section in MODEL_SECTIONS:
            mlflow.log_params(flatten(section, dumped[section]))
        mlflow.log_metrics({"cv_accuracy": result.accuracy, "cv_std_error": result.std_error})
        mlflow.log_metrics({f"fold{i}_accuracy": a for i, a in enumerate(result.fold_accuracy)})
        mlflow.set_tags({"variant": result.name, "git_commit": git_commit() or "unknown"})
    return str(run.info.run_id)

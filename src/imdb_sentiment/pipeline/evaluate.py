"""Evaluate: metrics, calibration and plots on the held-out test split."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn import metrics
from sklearn.pipeline import Pipeline

from imdb_sentiment.core.config import EvaluateParams
from imdb_sentiment.core.errors import PipelineError
from imdb_sentiment.core.labels import LABELS, class_ids_at


def expected_calibration_error(
    y_true: NDArray[Any], proba: NDArray[np.float64], bins: int = 10
) -> float:
    """Weighted mean |accuracy - confidence| over equal-width probability bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(proba, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(y_true[mask].mean() - proba[mask].mean())
    return float(error)


def classification_metrics(
    y_true: NDArray[Any],
    proba: NDArray[np.float64],
    threshold: float,
    bins: int = 10,
) -> dict[str, float]:
    y_true = np.asarray(y_true)
    predicted = class_ids_at(proba, threshold)
    return {
        "accuracy": float(metrics.accuracy_score(y_true, predicted)),
        "precision": float(metrics.precision_score(y_true, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(y_true, predicted, zero_division=0)),
        "f1": float(metrics.f1_score(y_true, predicted, zero_division=0)),
        "roc_auc": float(metrics.roc_auc_score(y_true, proba)),
        "log_loss": float(metrics.log_loss(y_true, proba, labels=[0, 1])),
        "brier": float(metrics.brier_score_loss(y_true, proba)),
        "ece": expected_calibration_error(y_true, proba, bins),
    }


def curve_data(
    y_true: NDArray[Any],
    proba: NDArray[np.float64],
    threshold: float,
    bins: int = 10,
) -> dict[str, list[dict[str, float | str]]]:
    """Plot data for DVC (ROC, PR, calibration) and the confusion matrix rows."""
    fpr, tpr, _ = metrics.roc_curve(y_true, proba)
    precision, recall, _ = metrics.precision_recall_curve(y_true, proba)
    prob_true, prob_pred = _calibration(y_true, proba, bins)
    step_roc = max(1, len(fpr) // 500)  # thin long curves: plots stay small and readable
    step_pr = max(1, len(precision) // 500)
    predicted = class_ids_at(proba, threshold)
    return {
        "roc": [
            {"fpr": float(f), "tpr": float(t)}
            for f, t in zip(fpr[::step_roc], tpr[::step_roc], strict=True)
        ],
        "precision_recall": [
            {"recall": float(r), "precision": float(p)}
            for r, p in zip(recall[::step_pr], precision[::step_pr], strict=True)
        ],
        "calibration": [
            {"mean_predicted": float(p), "fraction_positive": float(t)}
            for p, t in zip(prob_pred, prob_true, strict=True)
        ],
        "confusion": [
            {"actual": _name(a), "predicted": _name(p)}
            for a, p in zip(y_true, predicted, strict=True)
        ],
    }


def _name(label: int) -> str:
    return LABELS[int(label)]


def _calibration(
    y_true: NDArray[Any], proba: NDArray[np.float64], bins: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    from sklearn.calibration import calibration_curve

    prob_true, prob_pred = calibration_curve(y_true, proba, n_bins=bins, strategy="uniform")
    return np.asarray(prob_true), np.asarray(prob_pred)


def save_plots(
    y_true: NDArray[Any],
    proba: NDArray[np.float64],
    out_dir: Path,
    threshold: float,
) -> list[Path]:
    """Confusion matrix, ROC, PR and calibration PNGs (matplotlib, headless backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    out_dir.mkdir(parents=True, exist_ok=True)
    predicted = class_ids_at(proba, threshold)
    drawings = {
        "confusion_matrix": lambda ax: ConfusionMatrixDisplay.from_predictions(
            y_true, predicted, display_labels=list(LABELS), ax=ax, colorbar=False
        ),
        "roc_curve": lambda ax: RocCurveDisplay.from_predictions(y_true, proba, ax=ax),
        "precision_recall_curve": lambda ax: PrecisionRecallDisplay.from_predictions(
            y_true, proba, ax=ax
        ),
        "calibration_curve": lambda ax: CalibrationDisplay.from_predictions(
            y_true, proba, n_bins=10, ax=ax
        ),
    }
    written = []
    for name, draw in drawings.items():
        fig, ax = plt.subplots(figsize=(5, 4.5), dpi=100)
        draw(ax)
        ax.set_title(name.replace("_", " ").capitalize())
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def evaluate_model(
    model: Pipeline,
    x_test: sp.csr_matrix,
    y_test: NDArray[Any],
    texts: list[str],
    threshold: float,
    bins: int = 10,
    check_rows: int = 200,
) -> tuple[dict[str, float], NDArray[np.float64]]:
    """Test metrics from the featurized matrix, after checking that the whole pipeline on raw
    text gives the same probabilities (the matrix path must not drift from the artifact)."""
    proba = np.asarray(model[-1].predict_proba(x_test))[:, 1]
    head = np.asarray(model.predict_proba(texts[:check_rows]))[:, 1]
    if not np.allclose(head, proba[: len(head)], rtol=0, atol=1e-9):
        raise PipelineError("pipeline on raw text disagrees with the featurized test matrix")
    return classification_metrics(y_test, proba, threshold, bins), proba


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TAGS = re.compile(r"<[^>]{1,200}>")


def short_text_set(
    frame: pd.DataFrame, per_label: int = 1000, min_words: int = 4, max_words: int = 25
) -> pd.DataFrame:
    """Short inputs like people type into the page: the closing sentence (usually the verdict)
    of each test review with an extreme rating (1-2 or 9-10 stars), labelled by its review."""
    # A table has no star ratings (null): then there is no such set.
    extreme = frame[((frame.rating <= 2) | (frame.rating >= 9)).fillna(False).astype(bool)]
    rows = []
    for text, label in zip(extreme.text, extreme.label, strict=True):
        sentences = [s.strip() for s in _SENTENCE_END.split(_TAGS.sub(" ", text)) if s.strip()]
        if sentences and min_words <= len(sentences[-1].split()) <= max_words:
            rows.append((sentences[-1], int(label)))
    short = pd.DataFrame(rows, columns=["text", "label"])
    parts = [short[short.label == lab].head(per_label) for lab in (0, 1)]
    return pd.concat(parts, ignore_index=True)


def run_evaluation(
    model: Pipeline,
    x_test: sp.csr_matrix,
    test_parquet: Path,
    params: EvaluateParams,
    threshold: float,
    metrics_path: Path,
    plots_dir: Path,
) -> dict[str, float]:
    """Evaluate and write metrics JSON, PNG plots and DVC plot data."""
    from imdb_sentiment.core.io import write_json

    test = pd.read_parquet(test_parquet, columns=["rating", "label", "text"])
    y_test = test.label.to_numpy()
    result, proba = evaluate_model(
        model, x_test, y_test, test.text.tolist(), threshold, params.calibration_bins
    )
    short = short_text_set(test)
    if len(short):  # a small or synthetic test split may have no short verdict sentences
        short_proba = np.asarray(model.predict_proba(short.text.tolist()))[:, 1]
        result["short_accuracy"] = float(
            (class_ids_at(short_proba, threshold) == short.label).mean()
        )
    result["short_n"] = float(len(short))
    for name, rows in curve_data(y_test, proba, threshold, params.calibration_bins).items():
        write_json(plots_dir / f"{name}.json", rows)
    save_plots(y_test, proba, plots_dir, threshold)
    write_json(metrics_path, result)
    return result

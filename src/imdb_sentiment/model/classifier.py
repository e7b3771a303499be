"""Logistic regression with optional naive-Bayes log-count-ratio feature scaling (NB-LR).

NB-LR (Wang & Manning, 2012) scales each feature by how much more often it appears in positive
than negative reviews, then fits an ordinary linear classifier. Because the scaling is learned
from labels, it is fitted here, together with the classifier, never in the label-free featurizer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize
from sklearn.utils.validation import check_is_fitted

from imdb_sentiment.core.config import TrainParams


def nb_log_count_ratio(X: sp.spmatrix, y: NDArray[Any], alpha: float) -> NDArray[np.float64]:
    positive = alpha + np.asarray(X[y == 1].sum(axis=0)).ravel()
    negative = alpha + np.asarray(X[y == 0].sum(axis=0)).ravel()
    return np.log((positive / positive.sum()) / (negative / negative.sum()))


class NBLogisticRegression(ClassifierMixin, BaseEstimator):
    """A logistic regression whose inputs are scaled by NB log-count ratios when `nb` is on."""

    def __init__(
        self,
        C: float = 1.0,
        nb: bool = True,
        nb_alpha: float = 1.0,
        nb_normalize: bool = False,
        solver: str = "lbfgs",
        max_iter: int = 1000,
        random_state: int | None = None,
    ) -> None:
        self.C = C
        self.nb = nb
        self.nb_alpha = nb_alpha
        self.nb_normalize = nb_normalize
        self.solver = solver
        self.max_iter = max_iter
        self.random_state = random_state

    def _scale(self, X: sp.spmatrix) -> sp.csr_matrix:
        if not self.nb:
            return sp.csr_matrix(X)
        scaled = sp.csr_matrix(X.multiply(self.ratio_))
        # Re-normalising after NB scaling keeps every review's vector on the unit sphere,
        # which makes C comparable across vocabularies (and measured ~+0.2% accuracy).
        return normalize(scaled) if self.nb_normalize else scaled

    def fit(self, X: sp.spmatrix, y: NDArray[Any]) -> NBLogisticRegression:
        y = np.asarray(y)
        width = X.shape[1]
        self.ratio_ = nb_log_count_ratio(X, y, self.nb_alpha) if self.nb else np.ones(width)
        self.lr_ = LogisticRegression(
            C=self.C, solver=self.solver, max_iter=self.max_iter, random_state=self.random_state
        ).fit(self._scale(X), y)
        self.classes_ = self.lr_.classes_
        self.n_features_in_ = width
        return self

    def decision_function(self, X: sp.spmatrix) -> NDArray[np.float64]:
        check_is_fitted(self, "lr_")
        return np.asarray(self.lr_.decision_function(self._scale(X)))

    def predict_proba(self, X: sp.spmatrix) -> NDArray[np.float64]:
        check_is_fitted(self, "lr_")
        return np.asarray(self.lr_.predict_proba(self._scale(X)))

    def predict(self, X: sp.spmatrix) -> NDArray[Any]:
        return np.asarray(self.classes_[(self.decision_function(X) > 0).astype(int)])

    @property
    def coef_(self) -> NDArray[np.float64]:
        check_is_fitted(self, "lr_")
        return np.asarray(self.lr_.coef_)

    @property
    def intercept_(self) -> NDArray[np.float64]:
        check_is_fitted(self, "lr_")
        return np.asarray(self.lr_.intercept_)


class RowParts(Protocol):
    """A matrix read a block of rows at a time (core.io.SparseParts), as often as needed."""

    @property
    def shape(self) -> tuple[int, int]: ...

    def __iter__(self) -> Iterator[tuple[slice, sp.csr_matrix]]: ...


def _weighted_sums(X: RowParts, values: NDArray[np.float64]) -> NDArray[np.float64]:
    """X.T @ values, a block at a time."""
    out = np.zeros(X.shape[1])
    for rows, part in X:
        out += part.T @ values[rows]
    return out


def _row_norms(X: RowParts, scale: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each row's L2 norm after scaling its columns (1 for an empty row, as `normalize`)."""
    norms = np.empty(X.shape[0])
    for rows, part in X:
        norms[rows] = np.sqrt(part.multiply(part) @ (scale * scale))
    norms[norms == 0.0] = 1.0
    return norms


def fit_streamed(clf: NBLogisticRegression, X: RowParts, y: NDArray[Any],
                 weight: NDArray[np.float64]) -> NBLogisticRegression:  # fmt: skip
    """`clf.fit` on the rows of `X` whose `weight` is 1 (0 leaves a row out), holding one block
    of rows at a time: the NB ratios and row norms in one pass each, then sklearn's own lbfgs
    objective (mean log-loss + ||w||² / (2·C·n), intercept unpenalised, same tolerances) with
    every loss-and-gradient evaluation a pass over the blocks. NB scaling and normalisation are
    folded into the weights (x·r/‖x·r‖ · w = x·(r∘w)/‖x·r‖), so no scaled copy is made."""
    if clf.solver != "lbfgs":  # liblinear and saga need the rows in memory
        chosen = weight > 0
        matrix = sp.vstack([part for _, part in X]).tocsr()
        return clf.fit(matrix[chosen], np.asarray(y)[chosen])
    y = np.asarray(y)
    classes = np.unique(y[weight > 0])
    if len(classes) != 2:
        raise ValueError(f"two classes are needed to train, found {len(classes)}")
    target = (y == classes[1]).astype(np.float64)
    width = X.shape[1]
    if clf.nb:
        positive = clf.nb_alpha + _weighted_sums(X, weight * target)
        negative = clf.nb_alpha + _weighted_sums(X, weight * (1.0 - target))
        ratio = np.log((positive / positive.sum()) / (negative / negative.sum()))
    else:
        ratio = np.ones(width)
    norms = _row_norms(X, ratio) if clf.nb and clf.nb_normalize else np.ones(X.shape[0])
    total = float(weight.sum())
    l2 = 1.0 / (clf.C * total)

    def loss_and_gradient(coef: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        w, b = coef[:-1], coef[-1]
        folded = ratio * w
        loss, gradient, slope = 0.0, np.zeros(width), 0.0
        for rows, part in X:
            z = (part @ folded) / norms[rows] + b
            sw, t = weight[rows], target[rows]
            loss += float(sw @ (np.logaddexp(0.0, z) - t * z))
            g = sw * (expit(z) - t)
            gradient += part.T @ (g / norms[rows])
            slope += float(g.sum())
        gradient = ratio * gradient / total + l2 * w
        return loss / total + 0.5 * l2 * float(w @ w), np.r_[gradient, slope / total]

    found = minimize(loss_and_gradient, np.zeros(width + 1), method="L-BFGS-B", jac=True,
                     options={"maxiter": clf.max_iter, "maxls": 50, "gtol": 1e-4,
                              "ftol": 64 * np.finfo(float).eps})  # fmt: skip
    lr = LogisticRegression(C=clf.C, solver=clf.solver, max_iter=clf.max_iter,
                            random_state=clf.random_state)  # fmt: skip
    lr.coef_, lr.intercept_ = found.x[None, :-1].copy(), found.x[-1:].copy()
    lr.classes_, lr.n_features_in_, lr.n_iter_ = classes, width, np.array([found.nit])
    clf.ratio_, clf.lr_, clf.classes_, clf.n_features_in_ = ratio, lr, classes, width
    return clf


def build_classifier(params: TrainParams) -> NBLogisticRegression:
    return NBLogisticRegression(
        C=params.C,
        nb=params.nb_weighting,
        nb_alpha=params.nb_alpha,
        nb_normalize=params.nb_normalize,
        solver=params.solver,
        max_iter=params.max_iter,
        random_state=params.seed,
    )

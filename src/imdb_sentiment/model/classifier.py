"""Logistic regression with optional naive-Bayes log-count-ratio feature scaling (NB-LR).

NB-LR (Wang & Manning, 2012) scales each feature by how much more often it appears in positive
than negative reviews, then fits an ordinary linear classifier. Because the scaling is learned
from labels, it is fitted here, together with the classifier, never in the label-free featurizer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
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

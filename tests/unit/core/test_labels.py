"""core.labels: the logistic function gives the same probabilities for a request's few values
and a batch's."""

from __future__ import annotations

import numpy as np
from scipy.special import expit as scipy_expit

from imdb_sentiment.core.labels import SMALL, expit, sigmoid


def test_few_values_and_many_give_the_same_probabilities() -> None:
    """A request's few decisions go number by number (`math`), a batch's as arrays: the same
    probabilities either way, and scipy's to the last bits, overflow-free at either end."""
    x = np.r_[np.linspace(-800.0, 800.0, 4001), [0.0, -0.0, 1e-300, -1e-300]]
    few = np.concatenate([expit(x[i : i + SMALL]) for i in range(0, len(x), SMALL)])
    np.testing.assert_array_equal(few, expit(x))
    np.testing.assert_allclose(few, scipy_expit(x), rtol=0, atol=1e-15)
    assert few[0] == 0.0 and few[4000] == 1.0
    assert sigmoid(-800.0) == 0.0 and sigmoid(800.0) == 1.0 and sigmoid(0.0) == 0.5

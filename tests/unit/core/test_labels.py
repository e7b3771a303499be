"""core.labels: the logistic function gives the same probabilities for a request's few values
and a batch's."""

from __future__ import annotations

import numpy as np
from scipy.special import expit as scipy_expit

from imdb_sentiment.core.labels import expit, sigmoid


def test_few_values_and_many_give_the_same_probabilities() -> None:
    """A request's few decisions and a batch's give the same probabilities to the last bit (on
    any CPU: one formula), scipy's within an ulp or two, overflow-free at either end."""
    x = np.r_[np.linspace(-800.0, 800.0, 4001), [0.0, -0.0, 1e-300, -1e-300]]
    x = np.r_[x, np.random.default_rng(0).normal(0.0, 5.0, 20_000)]
    many = expit(x)
    for size in (1, 2, 3, 8):
        few = np.concatenate([expit(x[i : i + size]) for i in range(0, len(x), size)])
        np.testing.assert_array_equal(few, many)
    np.testing.assert_allclose(many, scipy_expit(x), rtol=0, atol=1e-15)
    assert many[0] == 0.0 and many[4000] == 1.0 and many[2000] == 0.5
    assert sigmoid(-800.0) == 0.0 and sigmoid(800.0) == 1.0 and sigmoid(0.0) == 0.5
    # The explanation's one value by `math`: libm's exp, within an ulp of numpy's.
    normal = np.abs(x) < 30
    one_by_one = np.array([sigmoid(v) for v in x[normal].tolist()])
    np.testing.assert_array_max_ulp(one_by_one, many[normal], maxulp=2)

"""The two classes: their names wherever a label is written or read (API bodies, prediction
records, the store, batch outputs, datasets), by position their ids in training (0, 1), and
the decision between them: positive from the model's threshold on. Every consumer decides with
these functions (training's validation report, evaluation, the compiled scorer in the service,
batch and Spark, the drift checks); a model's threshold is `model.threshold` in params.yaml,
carried by the registered version.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Label = Literal["negative", "positive"]
NEGATIVE: Label = "negative"
POSITIVE: Label = "positive"
LABELS: tuple[Label, Label] = (NEGATIVE, POSITIVE)  # index = the class id the model learns

# P(positive) from which a review is positive as sklearn's `predict` decides: the default of
# `model.threshold`, and the threshold of a model that carries none (`carried_threshold`).
DEFAULT_THRESHOLD = 0.5


def carried_threshold(value: Any) -> float:
    """A model's decision threshold from what it carries, checked: None for a model that
    carries none (a bare pipeline, a version registered before thresholds travelled with it),
    which was trained and evaluated at sklearn's 0.5. The one place that fallback is made."""
    threshold = DEFAULT_THRESHOLD if value is None else float(value)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"decision threshold {threshold} is not between 0 and 1")
    return threshold


def is_positive(p_positive: Any, threshold: float) -> Any:
    """The decision, for one probability or an array of them."""
    return p_positive >= threshold


def label_at(p_positive: float, threshold: float) -> Label:
    return LABELS[int(is_positive(p_positive, threshold))]


def class_ids_at(p_positive: NDArray[np.float64], threshold: float) -> NDArray[np.int64]:
    """Class ids (1 positive, 0 negative), as training and evaluation count them."""
    return np.asarray(is_positive(p_positive, threshold), dtype=np.int64)


# --- a linear model's decision as P(positive): the logistic function -------------------------
# As scipy.special.expit computes it (branch-wise: no overflow for large |x|), without scipy in
# the serving image.


def sigmoid(x: float) -> float:
    """One value, by `math` (the explanation path's single decision)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def expit(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Elementwise, one array formula for any size (~3 µs for a request's few values), so a
    request and a batch get the same numbers on every CPU: numpy's vectorised exp may differ
    from `math.exp` in the last bit (it does with AVX-512)."""
    z = np.exp(-np.abs(x))
    return np.asarray(np.where(x >= 0, 1.0, z) / (1.0 + z), dtype=np.float64)

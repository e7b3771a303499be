"""The two classes: their names wherever a label is written or read (API bodies, prediction
records, the store, batch outputs, datasets), by position their ids in training (0, 1), and
the decision between them: positive from the model's threshold on. Every consumer decides with
these functions (training's validation report, evaluation, the compiled scorer in the service,
batch and Spark, the drift checks); a model's threshold is `model.threshold` in params.yaml,
carried by the registered version.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Label = Literal["negative", "positive"]
NEGATIVE: Label = "negative"
POSITIVE: Label = "positive"
LABELS: tuple[Label, Label] = (NEGATIVE, POSITIVE)  # index = the class id the model learns

# P(positive) from which a review is positive, for a model that does not carry its own.
DEFAULT_THRESHOLD = 0.5


def is_positive(p_positive: Any, threshold: float) -> Any:
    """The decision, for one probability or an array of them."""
    return p_positive >= threshold


def label_at(p_positive: float, threshold: float) -> Label:
    return LABELS[int(is_positive(p_positive, threshold))]


def class_ids_at(p_positive: NDArray[np.float64], threshold: float) -> NDArray[np.int64]:
    """Class ids (1 positive, 0 negative), as training and evaluation count them."""
    return np.asarray(is_positive(p_positive, threshold), dtype=np.int64)

"""The two classes: their names wherever a label is written or read (API bodies, prediction
records, the store, batch outputs, datasets) and, by position, their ids in training (0, 1).

Imports: the standard library only.
"""

from __future__ import annotations

from typing import Literal

Label = Literal["negative", "positive"]
NEGATIVE: Label = "negative"
POSITIVE: Label = "positive"
LABELS: tuple[Label, Label] = (NEGATIVE, POSITIVE)  # index = the class id the model learns

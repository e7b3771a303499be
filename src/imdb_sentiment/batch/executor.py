"""What runs where the reviews are: a process-pool worker of the local engine, or a Spark
executor's Python worker. Imports only numpy and `runtime.scorer` (pandas too on
Spark), never scikit-learn or MLflow, and loads a scorer's arrays once per process.

Rows without text (null, empty or whitespace only) get a null probability and label: they are
counted and reported, never silently scored as the model's no-evidence value.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import NDArray

from imdb_sentiment.core.labels import LABELS, class_ids_at
from imdb_sentiment.runtime.scorer import FastScorer
from imdb_sentiment.runtime.scorer_files import load_scorer as read_scorer

if TYPE_CHECKING:  # pandas only where Spark calls in: pool workers stay smaller without it
    import pandas as pd

# Reviews per vectorised scoring call: measured fastest (larger batches sort more per call).
SUB_BATCH = 256

_scorers: dict[str, FastScorer] = {}


def load_scorer(directory: str) -> FastScorer:
    """The scorer saved in `directory`, loaded once per process."""
    scorer = _scorers.get(directory)
    if scorer is None:
        scorer = _scorers[directory] = read_scorer(Path(directory))
    return scorer


def has_text(texts: Sequence[object]) -> NDArray[np.bool_]:
    return np.fromiter(
        (isinstance(t, str) and not t.isspace() and t != "" for t in texts),
        dtype=bool,
        count=len(texts),
    )


def probabilities(scorer: FastScorer, texts: Sequence[object]) -> NDArray[np.float64]:
    """P(positive) of each text; NaN where there is no text."""
    valid = has_text(texts)
    out = np.full(len(texts), np.nan)
    scorable = [t for t, ok in zip(texts, valid, strict=True) if ok]
    scored = np.empty(len(scorable))
    for start in range(0, len(scorable), SUB_BATCH):
        chunk = scorable[start : start + SUB_BATCH]
        scored[start : start + len(chunk)] = scorer.positive_batch(chunk)  # type: ignore[arg-type]
    out[valid] = scored
    return out


def labels(probability: NDArray[np.float64], threshold: float) -> NDArray[np.object_]:
    """The label of each P(positive) at the model's threshold; None where there is no text."""
    out = np.asarray(LABELS, dtype=object)[class_ids_at(probability, threshold)]
    out[np.isnan(probability)] = None
    return out


class Chunk(NamedTuple):
    """A scored pool task: P(positive) of each text (NaN: no text) and how many of them the
    Python path cleaned (the kernel's count, or every scored text without the kernel)."""

    probability: NDArray[np.float64]
    python_path: int


def score_chunk(directory: str, texts: list[object]) -> Chunk:
    """A process-pool task of the local engine."""
    scorer = load_scorer(directory)
    native = scorer.native
    before = native.python_path if native is not None else 0
    probability = probabilities(scorer, texts)
    if native is None:
        return Chunk(probability, int(np.count_nonzero(~np.isnan(probability))))
    return Chunk(probability, native.python_path - before)


def score_texts(archive: str, texts: pd.Series) -> pd.DataFrame:
    """Spark's pandas UDF body: `probability` and `label` of an Arrow batch of texts.
    `archive` names the scorer zip the driver shipped with `SparkContext.addFile`."""
    import pandas as pd

    scorer = shipped_scorer(archive)
    probability = probabilities(scorer, texts.tolist())
    return pd.DataFrame(
        {"probability": probability, "label": labels(probability, scorer.threshold)}
    )


def shipped_scorer(archive: str) -> FastScorer:
    """The scorer in a zip shipped with `addFile`, unpacked and loaded once per process."""
    scorer = _scorers.get(archive)
    if scorer is None:
        from pyspark import SparkFiles

        # Its own directory per process: Python workers of one executor never race.
        target = Path(tempfile.mkdtemp(prefix=f"scorer-{os.getpid()}-"))
        with zipfile.ZipFile(SparkFiles.get(archive)) as packed:
            packed.extractall(target)
        scorer = _scorers[archive] = read_scorer(target)
    return scorer

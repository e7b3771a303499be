"""Drift: the signals of a window of predictions against those of a reference split, one named
test per signal with its threshold from `params.yaml` (`drift:`).

Signals, per review: `text_chars` (input length), `unknown_share` (tokens the model has never
seen), `confidence` (the probability of the label given) and `positive` (the label given, at
the model's threshold) — the same quantities
the service exports to Prometheus, so a dashboard alarm and this report agree.

Pure functions over DataFrames, plus the readers that build them: from the prediction log
(`store.records`), or from reviews scored with the compiled scorer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import ks_2samp

from imdb_sentiment.core.config import DistributionTest, DriftParams, ShareTest
from imdb_sentiment.core.errors import DataError
from imdb_sentiment.core.labels import POSITIVE
from imdb_sentiment.runtime.scorer import FastScorer
from imdb_sentiment.store.records import EVENT, PredictionRecord

SIGNALS = ("text_chars", "unknown_share", "confidence", "positive_share")
COLUMNS = ("text_chars", "unknown_share", "confidence", "positive")
EPSILON = 1e-4  # empty bins: PSI is undefined at 0


def signals(
    probability: ArrayLike, labels: Sequence[str], unknown_share: ArrayLike, text_chars: ArrayLike
) -> pd.DataFrame:
    """The drift signals of predictions: P(positive) and the label the model gave (at its own
    threshold), so confidence is the probability of the label given, as the API reports it."""
    p = np.asarray(probability, dtype=np.float64)
    positive = np.asarray([label == POSITIVE for label in labels], dtype=bool)
    return pd.DataFrame(
        {
            "text_chars": np.asarray(text_chars, dtype=np.float64),
            "unknown_share": np.asarray(unknown_share, dtype=np.float64),
            "confidence": np.where(positive, p, 1.0 - p),
            "positive": positive.astype(np.float64),
        }
    )


def score_texts(scorer: FastScorer, texts: list[str], batch: int = 1024) -> pd.DataFrame:
    """The signals of reviews, scored here with the model's compiled scorer."""
    scores = [
        s for i in range(0, len(texts), batch) for s in scorer.score_batch(texts[i : i + batch])
    ]
    return signals(
        [s.p_positive for s in scores],
        [s.label for s in scores],
        [s.unknown_share for s in scores],
        [len(t) for t in texts],
    )


def read_prediction_log(
    paths: Iterable[Path], since: datetime | None = None
) -> tuple[pd.DataFrame, int]:
    """Prediction records from log files (JSON lines, other events and non-JSON lines ignored,
    e.g. `kubectl logs` output); (signals with `time`/`model_version`, malformed records)."""
    records, malformed = [], 0
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if f'"{EVENT}"' not in line:
                    continue  # cheap: most lines of a mixed log are something else
                try:
                    body = json.loads(line[line.index("{") :])
                    if body.get("event") != EVENT:
                        continue
                    records.append(PredictionRecord.from_json(body))
                except (ValueError, KeyError, TypeError):
                    malformed += 1
    if since is not None:
        records = [r for r in records if r.time >= since.timestamp()]
    return records_frame(records), malformed


def records_frame(records: list[PredictionRecord]) -> pd.DataFrame:
    """The signals of prediction records, with their `model_version`. Records stored before
    the store kept the signals (tokens < 0) carry none and are left out."""
    records = [r for r in records if r.tokens >= 0]
    frame = signals(
        [r.probability for r in records],
        [r.label for r in records],
        [r.unknown_share for r in records],
        [r.text_chars for r in records],
    )
    frame["model_version"] = [r.model_version for r in records]
    return frame


def log_files(path: Path) -> list[Path]:
    """A file, or every prediction log in a directory (rotated files included)."""
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and ".jsonl" in p.name)
        if not found:
            raise DataError(f"no prediction logs (*.jsonl*) in {path}")
        return found
    if not path.exists():
        raise DataError(f"no such file: {path}")
    return [path]


def is_prediction_log(path: Path) -> bool:
    """Whether `path` holds prediction records (else it is a file of reviews to score)."""
    if path.is_dir():
        return True
    if path.suffix.lower() in {".parquet", ".csv"}:
        return False
    with path.open(encoding="utf-8", errors="replace") as lines:
        for _, line in zip(range(10_000), lines, strict=False):
            if f'"{EVENT}"' in line and '"event"' in line:
                return True
    return False


def read_reviews(path: Path, text_column: str) -> list[str]:
    """The texts of a CSV, Parquet or JSON Lines file (what `imdb-sentiment predict` reads)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path, columns=[text_column])
        elif suffix == ".csv":
            frame = pd.read_csv(path, usecols=[text_column], dtype={text_column: "string"})
        else:
            frame = pd.read_json(path, lines=True, dtype={text_column: "string"})
    except (ValueError, KeyError, OSError) as exc:
        raise DataError(f"cannot read reviews from {path}: {str(exc).splitlines()[0]}") from exc
    if text_column not in frame.columns:
        raise DataError(f"{path} has no column {text_column!r}")
    return [str(t) for t in frame[text_column].dropna()]


@dataclass(frozen=True)
class SignalResult:
    signal: str
    method: str
    statistic: float
    threshold: float
    drift: bool
    reference_mean: float
    current_mean: float


@dataclass(frozen=True)
class DriftResult:
    reference_rows: int
    current_rows: int
    signals: tuple[SignalResult, ...]

    @property
    def drift(self) -> bool:
        return any(s.drift for s in self.signals)

    def as_json(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "signals": [asdict(s) for s in self.signals],
        }


def psi(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """Population Stability Index over the reference's quantile bins (ties merged)."""
    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)))
    edges = np.concatenate([[-np.inf], edges[1:-1], [np.inf]])
    expected = np.clip(np.histogram(reference, edges)[0] / len(reference), EPSILON, None)
    actual = np.clip(np.histogram(current, edges)[0] / len(current), EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def statistic(
    test: DistributionTest | ShareTest, reference: np.ndarray, current: np.ndarray, bins: int
) -> float:
    """The test's statistic of `current` against `reference` (drift, and the shadow report's
    candidate against production)."""
    if test.method == "ks":
        return float(ks_2samp(reference, current).statistic)
    if test.method == "difference":
        return float(abs(current.mean() - reference.mean()))
    return psi(reference, current, bins if isinstance(test, DistributionTest) else 2)


def compare(reference: pd.DataFrame, current: pd.DataFrame, params: DriftParams) -> DriftResult:
    if len(current) < params.min_rows:
        raise DataError(
            f"only {len(current)} predictions in the window; drift.min_rows is {params.min_rows}"
        )
    results = []
    for signal, column in zip(SIGNALS, COLUMNS, strict=True):
        test: DistributionTest | ShareTest = getattr(params, signal)
        ref, cur = reference[column].to_numpy(), current[column].to_numpy()
        value = statistic(test, ref, cur, params.bins)
        results.append(
            SignalResult(
                signal=signal,
                method=test.method,
                statistic=round(value, 6),
                threshold=test.threshold,
                drift=value > test.threshold,
                reference_mean=round(float(ref.mean()), 6),
                current_mean=round(float(cur.mean()), 6),
            )
        )
    return DriftResult(len(reference), len(current), tuple(results))

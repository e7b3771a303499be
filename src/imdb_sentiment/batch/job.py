"""What a batch job is asked to do and what it reports, whichever engine runs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imdb_sentiment.batch.files import Format


@dataclass(frozen=True)
class Job:
    input: str  # a local path (local engine) or any Spark-readable URI (Spark engine)
    output: str
    input_format: Format
    output_format: Format
    text_column: str
    scorer_dir: Path  # a saved FastScorer of `version`
    version: str
    workers: int = 1  # local engine only; Spark's parallelism is the cluster's
    overwrite: bool = False
    fail_on_missing_text: bool = False
    prefix: str = ""  # of the added columns
    partitions: int | None = None  # Spark only; default: at least the cluster's parallelism


@dataclass(frozen=True)
class Summary:
    rows: int
    missing_text: int

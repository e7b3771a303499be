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
    # Spark only: ship this package's code as a zip (pure Python: the scorer's Python path), or
    # use the package installed in the executors' Python (with its compiled kernel).
    ship_package: bool = True


@dataclass(frozen=True)
class Summary:
    rows: int
    missing_text: int
    scorer: str = "python"  # "compiled": the C kernel scored what it handles (runtime.kernel)
    python_path: int = 0  # reviews the Python path scored (all of them without the kernel)

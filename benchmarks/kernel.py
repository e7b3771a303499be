"""The scorer on one core: the compiled kernel against the pure-Python path, same model, same
process, rounds interleaved.

Usage (after `make pipeline promote`; the kernel built by `make install`):

    python benchmarks/kernel.py [--rounds 5]

Loads the production version's compiled scorer from the registry, pins this process to one
core, then alternates: the median-length test review scored in batches of 256 copies, and all
25,000 test reviews in batches of 256 — by `FastScorer.score_batch` (the kernel, with the
Python path for what it hands back) and by the Python path alone. Prints reviews/s (median of
the rounds) and the ratio, and checks the kernel against the registered pipeline's
`predict_proba` on all 25,000 reviews (max |difference|, must be <= 1e-9: exit 1 otherwise).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import machine  # noqa: E402
from imdb_sentiment.runtime.kernel import KERNEL  # noqa: E402
from imdb_sentiment.runtime.scorer import FastScorer, _score_batch  # noqa: E402
from imdb_sentiment.runtime.scorer_files import load_scorer  # noqa: E402

BATCH = 256


def load(uri: str) -> tuple[FastScorer, object]:
    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    directory = Path(tempfile.mkdtemp())
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(directory))
    return load_scorer(Path(local) / "scorer"), mlflow.sklearn.load_model(uri)


def rate(score: Callable[[Sequence[str]], object], texts: list[str]) -> float:
    start = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        score(texts[i : i + BATCH])
    return len(texts) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default="models:/imdb-sentiment@production")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if KERNEL != "compiled":
        print("error: no compiled kernel in this install (make install, with gcc)", file=sys.stderr)
        return 1
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    scorer, pipeline = load(args.model_uri)
    block = scorer._word_block
    assert block is not None and scorer.native is not None, "a model the kernel does not score"
    texts = pd.read_parquet(ROOT / "data/raw/test.parquet").text.tolist()
    lengths = pd.Series(texts).str.len()
    median = texts[int((lengths - lengths.median()).abs().argmin())]
    paths = {
        "compiled": scorer.score_batch,
        "python": lambda t: _score_batch(block, scorer.linear, scorer.options, t, 0.5),
    }
    inputs = {"median review": [median] * 10_000, "25,000 test reviews": texts}
    found: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, reviews in inputs.items():
            for path, score in paths.items():
                found.setdefault((name, path), []).append(rate(score, reviews))
    reference = np.asarray(pipeline.predict_proba(texts))[:, 1]  # type: ignore[attr-defined]
    before = scorer.native.python_path
    got = np.array([s.p_positive for s in scorer.score_batch(texts)])
    gap = float(np.abs(got - reference).max())
    print(f"machine:  {machine()}, pinned to 1 core")
    print(f"scenario: batches of {BATCH}; {args.rounds} rounds interleaved, medians; "
          f"median review {len(median)} chars")  # fmt: skip
    for name in inputs:
        compiled = statistics.median(found[(name, "compiled")])
        python = statistics.median(found[(name, "python")])
        print(f"{name:20s} compiled {compiled:9,.0f} reviews/s   python {python:8,.0f} reviews/s   "
              f"x{compiled / python:.2f}")  # fmt: skip
    print(f"python path: {scorer.native.python_path - before:,} of {len(texts):,} test reviews "
          f"(not Latin-1); max |kernel - pipeline.predict_proba| {gap:.1e}")  # fmt: skip
    return 0 if gap <= 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Calibration of `imdb-sentiment drift`: how far apart same-distribution windows are, against
either reference split, and how far a real shift is (the figures behind params.yaml's `drift:`).

Windows of held-out test reviews (not in the reference sample) are scored with the registered
model and compared with the train and test splits; then reviews cut to their first sentence.
    .venv/bin/python benchmarks/drift.py [--model-uri models:/imdb-sentiment@production]
Needs data/raw/{train,test}.parquet (make pipeline) and the registry (./mlflow.db by default).
"""

from __future__ import annotations

import argparse
import os
import re

import pandas as pd

SIGNALS = ("text_chars", "unknown_share", "confidence")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default="models:/imdb-sentiment@production")
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--reference-rows", type=int, default=12_500)
    args = parser.parse_args()

    import mlflow.models
    import mlflow.sklearn

    from imdb_sentiment.core.labels import carried_threshold
    from imdb_sentiment.monitoring.drift import psi, score_texts
    from imdb_sentiment.runtime.compile import compile_pipeline
    from imdb_sentiment.runtime.scorer_files import THRESHOLD_METADATA

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    carried = mlflow.models.get_model_info(args.model_uri).metadata or {}
    threshold = carried_threshold(carried.get(THRESHOLD_METADATA))
    scorer = compile_pipeline(mlflow.sklearn.load_model(args.model_uri), threshold)
    train = pd.read_parquet("data/raw/train.parquet").text
    test = pd.read_parquet("data/raw/test.parquet").text.sample(frac=1.0, random_state=0)
    held_out = test.iloc[args.reference_rows :]  # never in the test reference sample
    references = {
        "train": score_texts(scorer, train.sample(args.reference_rows, random_state=0).tolist()),
        "test": score_texts(scorer, test.iloc[: args.reference_rows].tolist()),
    }
    print(f"model: {args.model_uri}; reference samples of {args.reference_rows} reviews")
    for size in (500, 1000):
        windows = [
            score_texts(scorer, held_out.sample(size, random_state=100 + i).tolist())
            for i in range(args.windows)
        ]
        for name, reference in references.items():
            ranges = []
            for signal in SIGNALS:
                values = [
                    psi(reference[signal].to_numpy(), w[signal].to_numpy(), 10) for w in windows
                ]
                ranges.append(f"{signal} {min(values):.3f}-{max(values):.3f}")
            print(f"same distribution, {size}/window, vs {name:5}: PSI " + ", ".join(ranges))
    first = held_out.sample(1000, random_state=7).map(lambda t: re.split(r"(?<=[.!?])\s", t)[0])
    shifted = score_texts(scorer, first.tolist())
    shift = [
        f"{s} {psi(references['test'][s].to_numpy(), shifted[s].to_numpy(), 10):.2f}"
        for s in SIGNALS
    ]
    print("first sentences, 1000 reviews, vs test: PSI " + ", ".join(shift))
    share = abs(shifted["positive"].mean() - references["test"]["positive"].mean())
    print(f"first sentences: positive share differs by {share:.3f}")


if __name__ == "__main__":
    main()

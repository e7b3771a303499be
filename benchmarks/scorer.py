"""In-process scorer benchmark: one registered model version compiled for serving, timed on test
reviews one at a time (with explanations, as the web page asks) and in 256-review batches.

For same-hour A/B comparisons of scorer changes, run it under two checkouts with the same model:
    .venv/bin/python benchmarks/scorer.py --model-uri models:/imdb-sentiment/1
    PYTHONPATH=/path/to/other/checkout/src .venv/bin/python benchmarks/scorer.py --model-uri ...
Needs `data/raw/test.parquet` (make pipeline) and the registry in MLFLOW_TRACKING_URI/./mlflow.db.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import pandas as pd


def best_of(rounds: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default="models:/imdb-sentiment@production")
    parser.add_argument("--reviews", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import mlflow.sklearn

    import imdb_sentiment

    try:
        from imdb_sentiment.runtime.compile import compile_pipeline
    except ImportError:  # a checkout from before serving/ had layers, for A/B runs
        from imdb_sentiment.serving.compile import compile_pipeline  # type: ignore[no-redef]

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    pipeline = mlflow.sklearn.load_model(args.model_uri)
    scorer = compile_pipeline(pipeline, 0.5)
    texts = pd.read_parquet("data/raw/test.parquet")["text"].tolist()[: args.reviews]
    singles = texts[: args.reviews // 2]
    expected = pipeline.predict_proba(texts[:500])[:, 1]
    got = np.array([scorer.score(text).p_positive for text in texts[:500]])

    single = best_of(args.rounds, lambda: [scorer.score(t, explain=5) for t in singles])
    batches = [texts[i : i + 256] for i in range(0, len(texts), 256)]
    batch = best_of(args.rounds, lambda: [scorer.score_batch(b) for b in batches])
    print(f"code:            {os.path.dirname(imdb_sentiment.__file__)}")
    print(f"model:           {args.model_uri}")
    print(f"max |scorer - pipeline| on 500 reviews: {float(np.abs(expected - got).max()):.1e}")
    print(f"single + explain: {len(singles) / single:8.0f} reviews/s (best of {args.rounds})")
    print(f"256-review batch: {len(texts) / batch:8.0f} reviews/s (best of {args.rounds})")


if __name__ == "__main__":
    main()

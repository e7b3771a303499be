"""What shadow scoring costs the service: SHADOW_SAMPLE 0, 0.1 and 1.0 in one run.

Usage (after `make pipeline promote`; needs `hey`):

    python benchmarks/shadow.py [--seconds 15] [--clients 8] [--rounds 2]

Registers a copy of the production version as a new version of the model (the candidate: the
same size of vocabulary and weights as a retrained model, so the same scoring cost) and points
SHADOW_MODEL_URI at it; deletes that version at the end. Then alternates, in each round, three
services with their defaults but for SHADOW_SAMPLE (0, 0.1, 1.0): `hey` posts the median-length
test review, then a batch of 100 test reviews. Prints req/s, p50/p99, reviews/s in batches and
RSS per worker, and the throughput ratio to SHADOW_SAMPLE=0. Target (issue 33): <= 10 %
single-review throughput at 0.1.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import machine  # noqa: E402
from benchmarks.serve import hey, measured, median_review, rss_mb, start, stop  # noqa: E402

SAMPLES = ("0", "0.1", "1.0")


def candidate_copy() -> tuple[str, str]:
    """A new version of the model with production's artifacts: (name, version)."""
    import mlflow
    from mlflow import MlflowClient

    from imdb_sentiment.core import tracking
    from imdb_sentiment.core.model_settings import load_model_settings

    settings = load_model_settings()
    tracking.configure(settings)
    name = settings.model_name
    production = MlflowClient().get_model_version_by_alias(name, "production")
    copy = mlflow.register_model(f"models:/{name}/{production.version}", name)
    return name, str(copy.version)


def run(sample: str, env: dict[str, str], median: str, batch: list[str],
        args: argparse.Namespace) -> dict[str, object]:  # fmt: skip
    proc, url = start("service", {**env, "SHADOW_SAMPLE": sample})
    try:
        if sample != "0":  # the sidecar has the candidate before the first request
            deadline = time.monotonic() + 60
            while requests.get(url + "/version", timeout=5).json()["shadow"] is None:
                if time.monotonic() > deadline:
                    raise SystemExit("error: the service never loaded the candidate")
                time.sleep(0.2)
        hey(url + "/api/v1/predict", {"text": median}, 3, args.clients)  # warm-up
        single = measured(proc, url + "/api/v1/predict", {"text": median}, args)
        batched = hey(url + "/api/v1/predict", {"texts": batch}, args.seconds, 2)
        workers, _ = rss_mb(proc)
    finally:
        stop(proc)
    return {"single": single, "batch": batched, "rss": statistics.median(workers)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("hey") is None:
        print("error: `hey` is not installed (apt-get install hey)", file=sys.stderr)
        return 1
    texts = pd.read_parquet(ROOT / "data/raw/test.parquet").text
    median = median_review(texts)
    batch = texts.sample(100, random_state=0).tolist()
    name, version = candidate_copy()
    env = {"SHADOW_MODEL_URI": f"models:/{name}/{version}",
           "DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/predictions.db",
           "MODEL_CACHE_DIR": tempfile.mkdtemp()}  # fmt: skip
    from imdb_sentiment.store.migrate import upgrade

    upgrade(env["DATABASE_URL"])
    results: dict[str, list[dict[str, object]]] = {s: [] for s in SAMPLES}
    try:
        for _ in range(args.rounds):  # interleaved: a noisy minute hits every setting
            for sample in SAMPLES:
                results[sample].append(run(sample, env, median, batch, args))
    finally:
        from mlflow import MlflowClient

        MlflowClient().delete_model_version(name, version)

    def med(sample: str, part: str, key: str) -> float:
        return statistics.median(float(r[part][key]) for r in results[sample])  # type: ignore[index]

    print(f"machine:  {machine()}")
    print(f"scenario: gunicorn 2 workers, {args.clients} clients, {args.seconds} s, the median "
          f"test review ({len(median)} chars) then batches of 100 (2 clients); candidate "
          f"version {version} (a copy of production); {args.rounds} rounds, medians")  # fmt: skip
    reference = med("0", "single", "rps")
    for sample in SAMPLES:
        rss = statistics.median(float(r["rss"]) for r in results[sample])  # type: ignore[arg-type]
        print(
            f"SHADOW_SAMPLE={sample:4s} {med(sample, 'single', 'rps'):7.0f} req/s "
            f"(x{med(sample, 'single', 'rps') / reference:.3f})  "
            f"p50 {med(sample, 'single', 'p50_ms'):5.2f} ms  "
            f"p99 {med(sample, 'single', 'p99_ms'):5.2f} ms  "
            f"batch {med(sample, 'batch', 'rps') * len(batch):6.0f} reviews/s  "
            f"RSS/worker {rss:4.0f} MB  non-2xx {med(sample, 'single', 'non_2xx'):.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Batches of 100 reviews against Seldon's MLServer with its MLflow runtime, same registered
model, same protocol (Open Inference Protocol JSON), 2 workers each, rounds interleaved.

Usage (after `make pipeline promote` and `make install-mlserver`; needs `hey`):

    python benchmarks/mlserver.py [--seconds 15] [--clients 4] [--rounds 2]

MLServer (.venv/tools-mlserver, `parallel_workers: 2`) loads the production version's MLflow
artifact: scikit-learn's pipeline behind the protocol. This service runs three times, under
gunicorn with its defaults and 2 workers: with the compiled kernel, with
IMDB_SENTIMENT_KERNEL=python (the pure-Python scorer), and with the kernel but no prediction
store (DATABASE_URL empty: like MLServer, nothing kept of a prediction). `hey` posts the same
bodies to each: 100 test reviews (as users send them), 100 short reviews (each test review's
first sentence), and one median-length review.
Prints reviews/s and p99 for each server and body, our routes `/v2/models/…/infer` (OIP) and
`/api/v1/predict`, and the ratios to MLServer. Checks first that every server gives the same
probabilities on the 100 test reviews (to 1e-6: this service's responses are rounded to 6
digits), exit 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import machine  # noqa: E402
from benchmarks.serve import hey, start, stop  # noqa: E402
from harness.server import free_port  # noqa: E402

MLSERVER = ROOT / ".venv/tools-mlserver/bin/mlserver"
NAME = "imdb-sentiment"


def oip(texts: list[str]) -> dict[str, object]:
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}


def start_mlserver(model_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    work = Path(tempfile.mkdtemp())
    port = free_port()
    settings = {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
                "parallel_workers": 2}  # fmt: skip
    (work / "settings.json").write_text(json.dumps(settings))
    model = {"name": NAME, "implementation": "mlserver_mlflow.MLflowRuntime",
             "parameters": {"uri": model_dir}}  # fmt: skip
    (work / "model-settings.json").write_text(json.dumps(model))
    log = open(work / "mlserver.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([str(MLSERVER), "start", str(work)], stdout=log, stderr=log,
                            start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/v2/models/{NAME}/ready", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"error: MLServer did not become ready ({work / 'mlserver.log'})")


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """MLServer's workers are its children: stop the process group it leads, by its id."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def p_positive(url: str, route: str, texts: list[str]) -> np.ndarray:
    if route == "api":
        body = requests.post(f"{url}/api/v1/predict", json={"texts": texts}, timeout=60).json()
        return np.array([p["probability"] if p["label"] == "positive" else 1 - p["probability"]
                         for p in body["predictions"]])  # fmt: skip
    body = requests.post(f"{url}/v2/models/{NAME}/infer", json=oip(texts), timeout=60).json()
    out = next(o for o in body["outputs"] if o["shape"][-1] == 2 or o["name"] == "probability")
    data = np.array(out["data"], dtype=np.float64)
    return data.reshape(-1, 2)[:, 1] if out["shape"][-1] == 2 else data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("hey") is None or not MLSERVER.exists():
        print(
            "error: needs `hey` and .venv/tools-mlserver (make install-mlserver)", file=sys.stderr
        )
        return 1
    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    model_dir = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{NAME}@production", dst_path=tempfile.mkdtemp()
    )
    texts = pd.read_parquet(ROOT / "data/raw/test.parquet").text
    median = texts.iloc[int((texts.str.len() - texts.str.len().median()).abs().argmin())]
    reviews = texts.sample(100, random_state=0).tolist()
    short = [re.split(r"(?<=[.!?])\s+", t.replace("<br />", " "))[0] for t in reviews]
    bodies = {"100 test reviews": reviews, "100 short reviews": short, "1 median review": [median]}
    base = {"DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/predictions.db",
            "DATABASE_MIGRATE": "auto", "MODEL_CACHE_DIR": tempfile.mkdtemp(),
            "MAX_BATCH_SIZE": "256"}  # fmt: skip
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        servers["mlserver"] = start_mlserver(model_dir)
        servers["service"] = start("service", base)
        servers["service, python path"] = start(
            "service", {**base, "IMDB_SENTIMENT_KERNEL": "python"}
        )
        servers["service, no store"] = start("service", {**base, "DATABASE_URL": ""})
        kernel = requests.get(servers["service"][1] + "/version", timeout=5).json()
        reference = p_positive(servers["mlserver"][1], "oip", reviews)
        gaps = {f"{name} {route}": float(np.abs(p_positive(url, route, reviews) - reference).max())
                for name, (_, url) in servers.items() if name != "mlserver"
                for route in ("oip", "api")}  # fmt: skip
        results = run_rounds(servers, bodies, args)
    finally:
        for name, (proc, _) in servers.items():
            stop_group(proc) if name == "mlserver" else stop(proc)
    report(results, gaps, kernel.get("scorer_kernel"), args)
    return 0 if max(gaps.values()) <= 1e-6 else 1


def run_rounds(servers: dict[str, tuple[subprocess.Popen[bytes], str]],
               bodies: dict[str, list[str]], args: argparse.Namespace,
               ) -> dict[tuple[str, str, str], list[dict[str, float]]]:  # fmt: skip
    results: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for body_name, texts in bodies.items():
            for name, (_, url) in servers.items():
                routes = ["oip"] if name == "mlserver" else ["oip", "api"]
                for route in routes:
                    body: dict[str, object] = oip(texts) if route == "oip" else {"texts": texts}
                    path = f"/v2/models/{NAME}/infer" if route == "oip" else "/api/v1/predict"
                    hey(url + path, body, 3, args.clients)  # warm-up
                    got = hey(url + path, body, args.seconds, args.clients)
                    got["reviews"] = got["rps"] * len(texts)
                    results.setdefault((body_name, name, route), []).append(got)
    return results


def report(results: dict[tuple[str, str, str], list[dict[str, float]]], gaps: dict[str, float],
           kernel: object, args: argparse.Namespace) -> None:  # fmt: skip
    print(f"machine:  {machine()}")
    print(f"scenario: 2 workers each, hey -c {args.clients} -z {args.seconds}s per body, "
          f"{args.rounds} rounds interleaved, medians; this service's /version scorer_kernel: "
          f"{kernel}")  # fmt: skip
    print(
        "answers:  max |P(positive) - MLServer's| on 100 test reviews: "
        + ", ".join(f"{k} {v:.1e}" for k, v in gaps.items())
    )

    def med(key: tuple[str, str, str], field: str) -> float:
        return statistics.median(r[field] for r in results[key])

    for body in dict.fromkeys(k[0] for k in results):
        yardstick = med((body, "mlserver", "oip"), "reviews")
        print(f"{body}:")
        for key in [k for k in results if k[0] == body]:
            print(f"  {key[1] + ' ' + key[2]:28s} {med(key, 'reviews'):9,.0f} reviews/s  "
                  f"p99 {med(key, 'p99_ms'):7.1f} ms  x{med(key, 'reviews') / yardstick:.2f} "
                  f"MLServer")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())

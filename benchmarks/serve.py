"""Serving benchmark: the service vs a bare Flask + scikit-learn app, same model, same load.

Usage (after `make pipeline`, so the local registry has a production model and
data/raw/test.parquet exists):  python benchmarks/serve.py [--seconds 20] [--clients 8]

Both apps run under gunicorn with 2 workers on loopback; `hey` sends the median-length test
review from 8 concurrent clients for 20 s. Then the batch endpoint is loaded with 256-review
batches. Prints throughput, latency percentiles, the ratio and RSS per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server import free_port  # noqa: E402

from benchmarks.pipeline import machine  # noqa: E402

BIN = Path(sys.executable).parent


def wait_ready(url: str, proc: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: server exited ({proc.returncode})")
        try:
            if requests.get(url + path, timeout=2).status_code in (200, 405):
                return
        except requests.RequestException:
            time.sleep(0.3)
    raise SystemExit("error: server did not become ready")


def start(kind: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    full = {
        **os.environ,
        **env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "2",
        "MODEL_RELOAD_INTERVAL": "0",
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(),
    }
    if kind == "service":
        cmd = [str(BIN / "imdb-sentiment"), "serve"]
    else:
        cmd = [
            str(BIN / "gunicorn"),
            "--workers",
            "2",
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(ROOT),
            "benchmarks.bare_app:app",
        ]
    log = open(Path(tempfile.gettempdir()) / f"bench-{kind}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=full, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, "/readyz" if kind == "service" else "/api/v1/predict")
    if kind == "service":
        wait_all_workers(url, workers=2)
    else:
        time.sleep(15)  # the bare app has no readiness signal: give both workers time to load
    return proc, url


def wait_all_workers(url: str, workers: int) -> None:
    """/readyz answers as soon as one worker is up; wait until every worker loaded the model."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = requests.get(url + "/metrics", timeout=5).text
        loads = sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith('model_reload_total{result="success"}')
        )
        if loads >= workers:
            return
        time.sleep(0.5)
    raise SystemExit("error: not every worker loaded the model")


def hey(url: str, body: dict[str, object], seconds: int, clients: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(body, handle)
    out = subprocess.run(
        [
            "hey",
            "-z",
            f"{seconds}s",
            "-c",
            str(clients),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-D",
            handle.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def grab(pattern: str) -> float:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else float("nan")

    codes = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", out))
    return {
        "rps": grab(r"Requests/sec:\s+([\d.]+)"),
        "p50_ms": grab(r"50%+ in ([\d.]+) secs") * 1000,
        "p99_ms": grab(r"99%+ in ([\d.]+) secs") * 1000,
        "non_2xx": sum(int(n) for c, n in codes.items() if not c.startswith("2")),
    }


def worker_rss_mb(proc: subprocess.Popen[bytes]) -> list[float]:
    children = psutil.Process(proc.pid).children(recursive=True)
    return [c.memory_info().rss / 2**20 for c in children]


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("hey") is None:
        print("error: `hey` is not installed (apt-get install hey)", file=sys.stderr)
        return 1
    test_path = ROOT / "data/raw/test.parquet"
    if not test_path.exists():
        print("error: run `make pipeline` first (needs data/raw/test.parquet)", file=sys.stderr)
        return 1
    texts = pd.read_parquet(test_path).text
    median = texts.iloc[(texts.str.len() - texts.str.len().median()).abs().argsort().iloc[0]]
    batch = texts.sample(256, random_state=0).tolist()
    env = {"BARE_MODEL_URI": "models:/imdb-sentiment@production"}

    service, url = start("service", env)
    try:
        hey(url + "/api/v1/predict", {"text": median}, 3, args.clients)  # warm-up
        fast = hey(url + "/api/v1/predict", {"text": median}, args.seconds, args.clients)
        rss = worker_rss_mb(service)
        batched = hey(url + "/api/v1/predict", {"texts": batch}, 10, 2)
    finally:
        stop(service)
    bare_proc, bare_url = start("bare", env)
    try:
        hey(bare_url + "/api/v1/predict", {"text": median}, 3, args.clients)  # warm-up
        bare = hey(bare_url + "/api/v1/predict", {"text": median}, args.seconds, args.clients)
        bare_rss = worker_rss_mb(bare_proc)
    finally:
        stop(bare_proc)

    print(f"machine:        {machine()}")
    print(
        f"scenario:       gunicorn 2 workers, {args.clients} clients, {args.seconds} s, "
        f"median test review ({len(median)} chars)"
    )
    for name, r, mem in (("service", fast, rss), ("bare sklearn", bare, bare_rss)):
        print(
            f"{name:14s}  {r['rps']:8.0f} req/s  "
            f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms"
            f"  non-2xx {r['non_2xx']}  RSS/worker {', '.join(f'{m:.0f}' for m in mem)} MB"
        )
    print(f"ratio:          {fast['rps'] / bare['rps']:.2f}x bare throughput (target >= 1.5x)")
    print(
        f"batch endpoint: {batched['rps'] * len(batch):8.0f} reviews/s (256-review batches, "
        f"2 clients, p99 {batched['p99_ms']:.0f} ms; target >= 5000)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

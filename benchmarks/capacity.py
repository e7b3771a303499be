"""CPU the service uses at fixed request rates: the basis of the Deployment's CPU request.

Usage (after `make pipeline promote`): python benchmarks/capacity.py [--rates 0 50 200 400]

Starts the service as benchmarks/serve.py does (gunicorn, 2 sync workers, the sync process),
sends single median-length reviews at each fixed rate with `hey -q` for 20 s, and prints the CPU
the whole process tree used (cores = CPU seconds / wall seconds) and the p99 latency.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import machine  # noqa: E402
from benchmarks.serve import start, stop  # noqa: E402


def tree_cpu(root: psutil.Process) -> float:
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def load(url: str, body: dict[str, str], rate: int, seconds: int) -> str:
    """`hey` at `rate` requests/s in total (4 clients x rate/4 each); its report."""
    if rate == 0:
        time.sleep(seconds)
        return ""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(body, handle)
    args = ["hey", "-z", f"{seconds}s", "-c", "4", "-q", str(max(rate // 4, 1))]
    args += ["-m", "POST", "-T", "application/json", "-D", handle.name, url]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[0, 50, 200, 400])
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    texts = pd.read_parquet(ROOT / "data/raw/test.parquet").text
    review = texts.iloc[(texts.str.len() - texts.str.len().median()).abs().argmin()]
    proc, url = start("service", {})
    root = psutil.Process(proc.pid)
    print(f"machine: {machine()}")
    try:
        for rate in args.rates:
            before, started = tree_cpu(root), time.monotonic()
            report = load(f"{url}/api/v1/predict", {"text": review}, rate, args.seconds)
            cores = (tree_cpu(root) - before) / (time.monotonic() - started)
            achieved = re.search(r"Requests/sec:\s+([\d.]+)", report)
            p99 = re.search(r"99%+ in ([\d.]+) secs", report)
            print(
                f"target {rate:>4} req/s: achieved {float(achieved[1]) if achieved else 0:7.1f} "
                f"req/s, CPU {cores:.2f} cores, p99 "
                f"{float(p99[1]) * 1000 if p99 else float('nan'):.1f} ms"
            )
    finally:
        stop(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

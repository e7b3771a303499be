"""The service itself under another WSGI server (issue 47): gunicorn's `sync` workers (how
`imdb-sentiment serve` runs it) against granian's WSGI interface, each beside its own ceiling
(benchmarks/ceiling_app.py on the same server) and `mlflow models serve` on the same registered
model, rounds interleaved.

Usage (after `make pipeline promote`; `hey` on PATH; granian in a directory of its own, its one
dependency, click, is the venv's):

    .venv/bin/python -m pip install --target /tmp/granlib --no-deps granian==2.8.9
    PATH=.venv/bin:$PATH .venv/bin/python benchmarks/servers.py --granian-lib /tmp/granlib \
        [--rounds 2] [--seconds 12] [--profile /tmp/granian-worker.txt] [--sides A,B] \
        [--threads 2]

Under granian the service runs as gunicorn's master would leave it: the store migrated and the
model cache synced once (`python -m imdb_sentiment.serving.server migrate | model-sync`), then
2 workers of `serving.http.wsgi:worker_app()` with one blocking thread each and granian's access
log on (gunicorn's runs log the service's JSON access line). No gunicorn hook runs there: this
measures the request path, not a finished process model. `--profile` samples one granian worker
with py-spy (`py-spy` on PATH) for 10 s under load and writes py-spy's raw stacks.
`--sides` picks the sides to run; not run by default: `gunicorn:service-without-store`,
`…-without-access-log` and `…-without-store-and-logs` (the prediction log too), the service
under gunicorn without those costs, the same under granian (`granian:service-without-…`), and
`gthread:service` and `gthread:ceiling`, the service and its ceiling under gunicorn's `gthread`
workers (keep-alive, `--threads` per worker).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import machine  # noqa: E402
from benchmarks.serve import hey, median_review, server_env, wait_ready  # noqa: E402
from benchmarks.serve import start as serve_start  # noqa: E402
from harness.server import free_port  # noqa: E402

BIN = Path(sys.executable).parent
SIDES = ("mlflow", "granian:service", "gunicorn:service", "granian:ceiling", "gunicorn:ceiling")
# Not run unless asked (--sides): the service without some of its costs, under gunicorn or
# granian, and the service and its ceiling under gunicorn's `gthread` workers (keep-alive;
# --threads each).
VARIANTS = {
    "without-store": {"DATABASE_URL": ""},
    "without-access-log": {"ACCESS_LOG": "false"},
    "without-store-and-logs": {
        "DATABASE_URL": "",
        "ACCESS_LOG": "false",
        "PREDICTION_LOG_RATE": "0",
    },
}
EXTRA_SIDES = (*(f"{server}:service-{name}" for server in ("gunicorn", "granian")
                 for name in VARIANTS), "gthread:service", "gthread:ceiling")  # fmt: skip
SERVERS = ("gunicorn", "gthread", "granian")
CEILING = "benchmarks.ceiling_app:app"


def granian(lib: str, port: int, *target: str) -> tuple[list[str], dict[str, str]]:
    command = [str(BIN / "python"), "-m", "granian", "--interface", "wsgi", "--workers", "2",
               "--blocking-threads", "1", "--host", "127.0.0.1", "--port", str(port),
               "--no-ws", *target]  # fmt: skip
    return command, {"PYTHONPATH": os.pathsep.join([lib, str(ROOT)])}


def granian_command(side: str, port: int, lib: str, env: dict[str, str]) -> list[str]:
    """A granian side's command; `env` gains what it needs."""
    if side.endswith(":ceiling"):
        command, extra = granian(lib, port, "--no-access-log", CEILING)
    else:
        access = "--no-access-log" if env.get("ACCESS_LOG") == "false" else "--access-log"
        command, extra = granian(lib, port, access, "--factory",
                                 "imdb_sentiment.serving.http.wsgi:worker_app")  # fmt: skip
        # What gunicorn's master does before its workers (it migrates only with a store).
        for step in ["migrate", "model-sync"] if env.get("DATABASE_URL") else ["model-sync"]:
            server = [str(BIN / "python"), "-m", "imdb_sentiment.serving.server", step]
            subprocess.run(server, env=env, check=True, capture_output=True)
    env.update(extra)
    return command


def start(side: str, database_url: str, lib: str | None,
          threads: int) -> tuple[subprocess.Popen[bytes], str]:  # fmt: skip
    """gunicorn's and MLflow's sides as benchmarks/serve.py starts them; granian's here."""
    kind, _, variant = (side if side == "mlflow" else side.split(":")[1]).partition("-")
    env = {"DATABASE_URL": database_url, **VARIANTS.get(variant, {})}
    if not side.startswith("granian:"):
        if side.startswith("gthread:"):
            env |= {"WORKER_CLASS": "gthread", "THREADS": str(threads)}
        return serve_start(kind, env)
    if lib is None:
        raise SystemExit(f"error: {side} needs --granian-lib")
    port = free_port()
    env = server_env(env, port)
    command = granian_command(side, port, lib, env)
    log = open(Path(tempfile.gettempdir()) / f"bench-{side.replace(':', '-')}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, "/api/v1/predict" if side.endswith("ceiling") else "/readyz")
    time.sleep(4)  # both workers up (granian has no per-worker signal)
    return proc, url


def paths(side: str, review: str) -> list[tuple[str, dict[str, object]]]:
    if side == "mlflow":
        return [("/invocations", {"inputs": [review]})]
    if side.endswith("ceiling"):
        return [("/api/v1/predict", {"text": review})]
    return [("/api/v1/predict", {"text": review}), ("/invocations", {"inputs": [review]})]


def profile(proc: subprocess.Popen[bytes], out: str) -> None:
    """py-spy on one worker for 10 s (raw stacks, wall clock, 250 Hz)."""
    worker = psutil.Process(proc.pid).children(recursive=True)[0].pid
    spy = ["py-spy", "record", "-d", "10", "-r", "250", "-p", str(worker), "-f", "raw", "-o", out]
    subprocess.run(spy, check=True, capture_output=True)


def run(side: str, review: str, args: argparse.Namespace, database_url: str) -> dict[str, dict]:
    proc, url = start(side, database_url, args.granian_lib, args.threads)
    results: dict[str, dict] = {}
    try:
        first, first_body = paths(side, review)[0]
        hey(url + first, first_body, 3, args.clients)  # warm-up
        for path, body in paths(side, review):
            results[path] = hey(url + path, body, args.seconds, args.clients)
        if args.profile and side == "granian:service":
            load = threading.Thread(target=hey, args=(url + first, first_body, 14, args.clients))
            load.start()
            time.sleep(2)
            profile(proc, args.profile)
            load.join()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--granian-lib", default=None,
                        help="a directory granian is installed in (for its sides)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="per worker, on gthread's sides")
    parser.add_argument("--profile", default=None, help="py-spy raw stacks of a granian worker")
    parser.add_argument("--sides", default=",".join(SIDES),
                        help=f"comma-separated, of {', '.join(SIDES + EXTRA_SIDES)}")  # fmt: skip
    args = parser.parse_args()
    if shutil.which("hey") is None or shutil.which("uvicorn") is None:
        print("error: needs `hey` and the venv's bin (uvicorn) on PATH", file=sys.stderr)
        return 1
    texts = pd.read_parquet(ROOT / "data/raw/test.parquet").text
    review = median_review(texts)
    database_url = f"sqlite:///{tempfile.mkdtemp()}/predictions.db"
    sides = args.sides.split(",")
    unknown = set(sides) - set(SIDES + EXTRA_SIDES)
    if unknown:
        print(f"error: unknown sides: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 1
    runs: dict[str, list[dict[str, float]]] = {}
    for number in range(args.rounds):  # interleaved: a noisy minute hits every side
        for side in sides:
            for path, figures in run(side, review, args, database_url).items():
                runs.setdefault(f"{side} {path}", []).append(figures)
                print(f"round {number + 1} {side:17s} {path:16s} {figures['rps']:7.0f} req/s  "
                      f"p99 {figures['p99_ms']:5.1f} ms  non-2xx {figures['non_2xx']:.0f}",
                      flush=True)  # fmt: skip
    report(runs, args)
    return 0


def report(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    def rps(key: str) -> list[float]:
        return [r["rps"] for r in runs[key]]

    print(f"machine: {machine()}; {args.clients} clients, {args.seconds} s, rounds {args.rounds}")
    for key, figures in runs.items():
        p99 = ", ".join(f"{r['p99_ms']:.1f}" for r in figures)
        print(f"{key:48s} req/s {', '.join(f'{r:.0f}' for r in rps(key))}; p99 ms {p99}")
    if "mlflow /invocations" not in runs:  # the ratios need their references
        return
    mlflow = rps("mlflow /invocations")
    for server in SERVERS:
        if (
            f"{server}:service /invocations" not in runs
            or f"{server}:ceiling /api/v1/predict" not in runs
        ):
            continue
        invocations = rps(f"{server}:service /invocations")
        predict = rps(f"{server}:service /api/v1/predict")
        ceiling = rps(f"{server}:ceiling /api/v1/predict")
        of_mlflow = [a / b for a, b in zip(invocations, mlflow, strict=True)]
        of_ceiling = [a / b for a, b in zip(predict, ceiling, strict=True)]
        print(f"{server:9s} /invocations {statistics.median(of_mlflow):.1f}x mlflow serve "
              f"(rounds {', '.join(f'{r:.1f}' for r in of_mlflow)}); /api/v1/predict "
              f"{statistics.median(of_ceiling):.0%} of its ceiling "
              f"(rounds {', '.join(f'{r:.0%}' for r in of_ceiling)})")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())

"""Serving benchmark: the service against the stack's ceiling and a bare Flask + scikit-learn
app, same load.

Usage (after `make pipeline promote`, so the local registry has a production model and
data/raw/test.parquet exists):  python benchmarks/serve.py [--seconds 20] [--clients 8] [--rounds 3]

All three run under gunicorn with 2 workers on loopback; `hey` sends the median-length test
review from 8 concurrent clients for 20 s. The ceiling (`benchmarks/ceiling_app.py`) is the same
Flask on the same gunicorn answering a constant body after parsing the request: what the stack
itself costs. Then the service's batch endpoint is loaded with 256-review batches (2 clients).
Prints throughput, p50/p99, the ratios (per round and median), RSS and CPU per request (workers,
and hey), and checks the hidden costs: every answered prediction counted in /metrics across
workers and stored, none dropped (exit 1 otherwise). Runs alternate
service, ceiling and bare within each round (this host drifts by tens of percent from minute to
minute). The service runs with its defaults: JSON access log, 1 % prediction log, the prediction
store (SQLite; `--database-url` for another).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
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

from benchmarks.pipeline import machine  # noqa: E402
from harness.server import free_port  # noqa: E402
from imdb_sentiment.serving.service_settings import load_settings  # noqa: E402

BIN = Path(sys.executable).parent
MODEL_URI = "models:/imdb-sentiment@production"


def median_review(texts: pd.Series) -> str:
    """The review whose length is the median's: what the single-review benchmarks post."""
    return str(texts.iloc[(texts.str.len() - texts.str.len().median()).abs().argsort().iloc[0]])


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
    stop(proc)  # a server that never got ready is not left running
    raise SystemExit("error: server did not become ready")


def server_env(env: dict[str, str], port: int) -> dict[str, str]:
    """A benchmarked server's environment: `env` over this one's, on loopback, 2 workers, its
    own metrics directory and spool (unless `env` names one)."""
    return {
        **os.environ,
        **env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(),
        "PREDICTION_SPOOL_DIR": env.get("PREDICTION_SPOOL_DIR") or tempfile.mkdtemp(),
    }


def start(kind: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    full = server_env(env, port)
    # The ceiling runs on the service's gunicorn settings, with the worker class asked for.
    settings = load_settings(**{k: env[k] for k in ("WORKER_CLASS", "THREADS") if k in env})
    ready = "/readyz" if kind == "service" else "/api/v1/predict"
    if kind == "service":
        cmd = [str(BIN / "imdb-sentiment"), "serve"]
    elif kind == "mlflow":  # MLflow's own scoring server on the same registered model
        cmd = [str(BIN / "mlflow"), "models", "serve", "-m", MODEL_URI, "--env-manager", "local",
               "-w", "2", "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
        full["MLFLOW_TRACKING_URI"] = settings.model.mlflow_tracking_uri
        ready = "/ping"
    else:
        app = "benchmarks.bare_app:app" if kind == "bare" else "benchmarks.ceiling_app:app"
        cmd = [
            str(BIN / "gunicorn"),
            "--workers",
            "2",
            "--worker-class",
            settings.service.worker_class,  # the service's gunicorn settings, same environment
            "--threads",
            str(settings.service.threads if settings.service.worker_class == "gthread" else 1),
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(ROOT),
            app,
        ]
    log = open(Path(tempfile.gettempdir()) / f"bench-{kind}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=full, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, ready)  # stops the server if it never answers
    if kind == "service":
        try:
            wait_all_workers(url, workers=2)
        except BaseException:  # a server not every worker of which got ready is not left running
            stop(proc)
            raise
    elif kind in ("bare", "mlflow"):
        time.sleep(15)  # no readiness signal per worker: give both workers time to load
    else:
        time.sleep(2)
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
        "ok": sum(int(n) for c, n in codes.items() if c.startswith("2")),
    }


def rss_mb(proc: subprocess.Popen[bytes]) -> tuple[list[float], list[float]]:
    """RSS of the gunicorn workers, and of the service's registry-sync process (if any)."""
    workers: list[float] = []
    sync: list[float] = []
    for child in psutil.Process(proc.pid).children(recursive=True):
        mb = child.memory_info().rss / 2**20
        is_sync = "imdb_sentiment.serving.server model-sync" in " ".join(child.cmdline())
        (sync if is_sync else workers).append(mb)
    return workers, sync


def worker_cpu(proc: subprocess.Popen[bytes]) -> float:
    """CPU seconds (user + system) of the server's workers so far (not the sync process)."""
    total = 0.0
    for child in psutil.Process(proc.pid).children(recursive=True):
        if "imdb_sentiment.serving.server model-sync" not in " ".join(child.cmdline()):
            times = child.cpu_times()
            total += times.user + times.system
    return total


def measured(
    proc: subprocess.Popen[bytes], url: str, body: dict[str, object], args: argparse.Namespace
) -> dict[str, float]:
    """`hey` on the single review, with the CPU each request cost the workers and the load
    generator (on the same 2 cores: a slower server costs hey more per request too)."""
    workers_before = worker_cpu(proc)
    hey_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = hey(url, body, args.seconds, args.clients)
    hey_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = worker_cpu(proc) - workers_before
    hey_cpu = (hey_after.ru_utime + hey_after.ru_stime) - (
        hey_before.ru_utime + hey_before.ru_stime
    )
    requests_done = max(result["ok"] + result["non_2xx"], 1)
    return {
        **result,
        "worker_cpu_us": workers / requests_done * 1e6,
        "hey_cpu_us": hey_cpu / requests_done * 1e6,
    }


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def predict_metrics(url: str) -> tuple[float, float]:
    """(POST /api/v1/predict answered 200, prediction records the spool dropped) from /metrics,
    summed over every worker as Prometheus sees them."""
    answered = dropped = 0.0
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("app_request_count_total{") and 'endpoint="/api/v1/predict"' in line:
            answered += float(line.split()[-1]) if 'status="200"' in line else 0.0
        elif line.startswith("prediction_spool_dropped_records_total{"):
            dropped += float(line.split()[-1])
    return answered, dropped


def stored_rows(url: str) -> int:
    from sqlalchemy import func, select

    from imdb_sentiment.store.database import open_store
    from imdb_sentiment.store.tables import predictions

    store = open_store(url)
    with store.engine.connect() as db:
        return int(db.execute(select(func.count()).select_from(predictions)).scalar_one())


def run_service(
    median: str, batch: list[str], env: dict[str, str], args: argparse.Namespace
) -> dict[str, object]:
    database = env["DATABASE_URL"]
    before = stored_rows(database)
    service, url = start("service", env)
    try:
        warm = hey(url + "/api/v1/predict", {"text": median}, 3, args.clients)
        single = measured(service, url + "/api/v1/predict", {"text": median}, args)
        invoked = (measured(service, url + "/invocations", {"inputs": [median]}, args)
                   if args.mlflow else {"ok": 0})  # fmt: skip
        workers, sync = rss_mb(service)
        batched = hey(url + "/api/v1/predict", {"texts": batch}, 10, args.batch_clients)
        answered, dropped = predict_metrics(url)
    finally:
        stop(service)  # the flusher writes out what the spool holds
    sent = warm["ok"] + single["ok"] + batched["ok"]
    hidden = {
        "answered_200": sent,
        "counted_200": answered,  # exact across workers: equals answered_200
        "predictions": warm["ok"] + single["ok"] + invoked["ok"] + batched["ok"] * len(batch),
        "stored": stored_rows(database) - before,  # complete: equals predictions
        "dropped": dropped,
    }
    return {"single": single, "invocations": invoked, "batch": batched, "rss": workers,
            "sync_rss": sync, **hidden}  # fmt: skip


def run_bare(
    median: str, env: dict[str, str], args: argparse.Namespace, kind: str = "bare"
) -> dict[str, object]:
    proc, url = start(kind, env)
    body: dict[str, object] = {"inputs": [median]} if kind == "mlflow" else {"text": median}
    path = "/invocations" if kind == "mlflow" else "/api/v1/predict"
    try:
        hey(url + path, body, 3, args.clients)  # warm-up
        single = measured(proc, url + path, body, args)
        workers, _ = rss_mb(proc)
    finally:
        stop(proc)
    return {"single": single, "rss": workers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate service/bare N times; print medians"
    )
    parser.add_argument("--skip-bare", action="store_true", help="ceiling only as the reference")
    parser.add_argument(
        "--batch-clients", type=int, default=2, help="clients of the batch endpoint's load"
    )
    parser.add_argument("--database-url", default=None, help="the service's DATABASE_URL")
    parser.add_argument("--mlflow", action=argparse.BooleanOptionalAction, default=True,
                        help="`mlflow models serve` on the same model as a side (/invocations, "
                             "the service's /invocations against it)")  # fmt: skip
    parser.add_argument(
        "--prediction-log-rate",
        type=float,
        default=None,
        help="the service's PREDICTION_LOG_RATE (default: its setting's default)",
    )
    args = parser.parse_args()
    if shutil.which("hey") is None:
        print("error: `hey` is not installed (apt-get install hey)", file=sys.stderr)
        return 1
    test_path = ROOT / "data/raw/test.parquet"
    if not test_path.exists():
        print(
            "error: run `make pipeline promote` first (no data/raw/test.parquet)", file=sys.stderr
        )
        return 1
    texts = pd.read_parquet(test_path).text
    median = median_review(texts)
    batch = texts.sample(256, random_state=0).tolist()
    env = {"BARE_MODEL_URI": MODEL_URI}
    if args.prediction_log_rate is not None:
        env["PREDICTION_LOG_RATE"] = str(args.prediction_log_rate)
    # The production default (a SQLite store) in a file of its own, so its rows can be counted.
    env["DATABASE_URL"] = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/predictions.db"
    from imdb_sentiment.store.migrate import upgrade

    upgrade(env["DATABASE_URL"])
    rate = args.prediction_log_rate
    overrides: dict[str, object] = {} if rate is None else {"prediction_log_rate": rate}
    overrides["database_url"] = env["DATABASE_URL"]
    served = load_settings(**overrides)

    services, ceilings, bares, mlflows = [], [], [], []
    for _ in range(args.rounds):  # interleaved, so a noisy minute hits every side
        services.append(run_service(median, batch, env, args))
        ceilings.append(run_bare(median, env, args, kind="ceiling"))
        if args.mlflow:
            mlflows.append(run_bare(median, env, args, kind="mlflow"))
        if not args.skip_bare:
            bares.append(run_bare(median, env, args))

    def med(runs: list[dict[str, object]], part: str, key: str) -> float:
        return statistics.median(float(r[part][key]) for r in runs)  # type: ignore[index]

    print(f"machine:        {machine()}")
    print(
        f"scenario:       gunicorn 2 workers, {args.clients} clients, {args.seconds} s, "
        f"median test review ({len(median)} chars); {args.rounds} round(s), medians"
    )
    print(
        f"service logs:   {served.service.log_format}, access log {served.service.access_log}, "
        f"prediction log rate {served.service.prediction_log_rate:g} "
        f"({served.service.prediction_log_dir or 'stdout'})"
    )
    print(f"service store:  {served.store.database_url or 'off'}")
    sides = [("service", services, "single"), ("ceiling", ceilings, "single")]
    sides += [("bare sklearn", bares, "single")] if bares else []
    if mlflows:
        sides += [("service /inv.", services, "invocations"), ("mlflow serve", mlflows, "single")]
    for name, runs, part in sides:
        rss = [mb for r in runs for mb in r["rss"]]  # type: ignore[attr-defined]
        print(
            f"{name:14s}  {med(runs, part, 'rps'):8.0f} req/s  "
            f"p50 {med(runs, part, 'p50_ms'):6.2f} ms  "
            f"p99 {med(runs, part, 'p99_ms'):6.2f} ms  "
            f"non-2xx {sum(r[part]['non_2xx'] for r in runs)}  "  # type: ignore[index]
            f"RSS/worker max {max(rss):.0f} MB  CPU/request: workers "
            f"{med(runs, part, 'worker_cpu_us'):.0f} us, "
            f"hey {med(runs, part, 'hey_cpu_us'):.0f} us"
        )

    def ratios(reference: list[dict[str, object]], part: str = "single") -> list[float]:
        return [
            float(s[part]["rps"]) / float(b["single"]["rps"])  # type: ignore[index]
            for s, b in zip(services, reference, strict=True)
        ]

    of_ceiling = ratios(ceilings)
    print(
        f"of the ceiling: {statistics.median(of_ceiling):.0%} of its throughput (target >= 70 %; "
        f"per round: {', '.join(f'{r:.0%}' for r in of_ceiling)})"
    )
    if mlflows:
        per_round = ratios(mlflows, "invocations")
        print(
            f"mlflow serve:   {statistics.median(per_round):.1f}x its throughput on /invocations "
            f"(target >= 15x; per round: {', '.join(f'{r:.1f}' for r in per_round)})"
        )
    if bares:
        per_round = ratios(bares)
        print(
            f"ratio:          {statistics.median(per_round):.2f}x bare throughput (target >= "
            f"1.5x; per round: {', '.join(f'{r:.2f}' for r in per_round)})"
        )
    sync_rss = [mb for r in services for mb in r["sync_rss"]]  # type: ignore[attr-defined]
    if sync_rss:
        print(f"sync process:   RSS {max(sync_rss):.0f} MB (one per server, not per worker)")
    print(
        f"batch endpoint: {med(services, 'batch', 'rps') * len(batch):8.0f} reviews/s "
        f"(256-review batches, {args.batch_clients} clients, "
        f"p99 {med(services, 'batch', 'p99_ms'):.0f} ms; target >= 12,000)"
    )
    complete = all(
        r["counted_200"] == r["answered_200"] and r["stored"] == r["predictions"] for r in services
    )
    for r in services:
        print(
            f"hidden costs:   {r['answered_200']:.0f} answered 200, {r['counted_200']:.0f} counted "
            f"in /metrics; {r['predictions']} predictions, {r['stored']} stored, "
            f"{r['dropped']:.0f} dropped"
        )
    print(f"                {'complete and exact' if complete else 'INCOMPLETE (see above)'}")
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())

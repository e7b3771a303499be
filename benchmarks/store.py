"""The prediction store's cost and capacity on a real PostgreSQL server.

Usage (after `make pipeline promote`; needs Debian's postgresql and `hey`):

    python benchmarks/store.py [--seconds 20] [--clients 8] [--rounds 2]

Starts a PostgreSQL server in a temporary directory (tests/postgres.py, as the tests do), then
alternates, in one run, the service with its defaults and the store on PostgreSQL against the
same service with the store off (DATABASE_URL empty): `hey` posts the median-length test review.
Prints req/s, p50/p99 and the throughput ratio per round; then, from the PostgreSQL runs, the
sustained write rate (rows stored per second of load), records dropped
(`prediction_records_dropped_total`), and the table's size per row on disk with its indexes.
Target (issue 20): the PostgreSQL store costs <= 10 % single-review throughput; 0 dropped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import pandas as pd
import psutil
import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.postgres import PostgresServer, pg_bin  # noqa: E402

from benchmarks.pipeline import machine  # noqa: E402
from benchmarks.serve import hey, start, stop  # noqa: E402


def dropped(url: str) -> float:
    return sum(
        float(line.split()[-1])
        for line in requests.get(url + "/metrics", timeout=5).text.splitlines()
        if line.startswith("prediction_records_dropped_total{")
    )


def postgres_cpu(server: PostgresServer) -> float:
    """CPU seconds used so far by the PostgreSQL server (postmaster and its backends); it
    shares this machine's cores with the service here, a managed database does not."""
    total = 0.0
    for proc in psutil.process_iter(["cmdline"]):
        if str(server.dir) not in " ".join(proc.info["cmdline"] or []):
            continue
        for member in [proc, *proc.children(recursive=True)]:
            try:
                times = member.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except psutil.Error:
                continue
    return total


def run(
    median: str, env: dict[str, str], args: argparse.Namespace, server: PostgresServer
) -> dict[str, float]:
    proc, url = start("service", env)
    try:
        warm = hey(url + "/api/v1/predict", {"text": median}, 3, args.clients)
        cpu = postgres_cpu(server)
        result = hey(url + "/api/v1/predict", {"text": median}, args.seconds, args.clients)
        result["postgres_cores"] = (postgres_cpu(server) - cpu) / args.seconds
        result["dropped"] = dropped(url)
        result["answered"] = warm["ok"] + result["ok"]
    finally:
        stop(proc)  # drains the writers (gunicorn's worker_exit)
    return result


def count_rows(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    with engine.connect() as db:
        rows = int(db.execute(text("SELECT count(*) FROM predictions")).scalar_one())
        size = int(db.execute(text("SELECT pg_total_relation_size('predictions')")).scalar_one())
    engine.dispose()
    return rows, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    bindir = pg_bin()
    if bindir is None:
        print("error: PostgreSQL is not installed (apt-get install postgresql)", file=sys.stderr)
        return 1
    texts = pd.read_parquet(ROOT / "data/raw/test.parquet").text
    median = texts.iloc[(texts.str.len() - texts.str.len().median()).abs().argsort().iloc[0]]
    server = PostgresServer(bindir)
    server.start()
    try:
        url = server.new_database()
        on: list[dict[str, float]] = []
        off: list[dict[str, float]] = []
        written, seconds = 0, 0.0
        for _ in range(args.rounds):  # interleaved: the host drifts by tens of percent
            before, _ = count_rows(url) if on else (0, 0)
            on.append(run(median, {"DATABASE_URL": url}, args, server))
            after, size = count_rows(url)
            written += after - before
            seconds += args.seconds + 3  # warm-up requests are stored too
            off.append(run(median, {"DATABASE_URL": ""}, args, server))
    finally:
        server.remove()
    print(f"machine:   {machine()}")
    print(f"scenario:  gunicorn 2 workers, {args.clients} clients, {args.seconds} s, "
          f"median test review ({len(median)} chars), defaults; {args.rounds} rounds")  # fmt: skip
    for i, (a, b) in enumerate(zip(on, off, strict=True)):
        print(f"round {i + 1}:   store on PostgreSQL {a['rps']:7.0f} req/s p50 {a['p50_ms']:.2f} "
              f"p99 {a['p99_ms']:.2f} ms | store off {b['rps']:7.0f} req/s p50 {b['p50_ms']:.2f} "
              f"p99 {b['p99_ms']:.2f} ms | cost {1 - a['rps'] / b['rps']:+.1%}")  # fmt: skip
    cost = statistics.median(1 - a["rps"] / b["rps"] for a, b in zip(on, off, strict=True))
    print(f"median cost of the store: {cost:.1%} of single-review throughput (target <= 10 %)")
    cores = statistics.median(a["postgres_cores"] for a in on)
    print(f"the co-located PostgreSQL server meanwhile: {cores:.2f} cores busy "
          f"({cores / 2:.0%} of this machine; a managed database runs elsewhere)")  # fmt: skip
    answered = int(sum(a["answered"] for a in on))
    print(f"writes:    {written:,} rows stored of {answered:,} predictions answered, "
          f"{written / seconds:,.0f} rows/s sustained under load; dropped "
          f"{sum(a['dropped'] for a in on):.0f} (target 0)")  # fmt: skip
    print(f"size:      {size / max(after, 1):.0f} bytes per row with indexes ({after:,} rows, "
          f"{size / 1e6:.1f} MB; texts off)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The prediction store's cost and capacity on a real PostgreSQL server.

Usage (after `make pipeline promote`; needs Debian's postgresql and `hey`):

    python benchmarks/store.py [--seconds 20] [--clients 8] [--rounds 2]

Starts a PostgreSQL server in a temporary directory (harness/postgres.py, as the tests do), then
alternates, in one run, three services with their defaults: the store on PostgreSQL; the same
while the PostgreSQL server is stopped (an outage: every record waits in the spool, then is
written when the server is back); and the store off (DATABASE_URL empty). `hey` posts the
median-length test review. Prints req/s, p50/p99 and the throughput ratio per round; then, from
the PostgreSQL runs, the sustained write rate (rows stored per second of load), records dropped
(`prediction_spool_dropped_records_total`), how long the spool took to empty after the outage,
and the table's size per row on disk with its indexes. Targets (issues 20, 31): the PostgreSQL
store costs <= 10 % single-review throughput; 0 dropped, during an outage too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import machine  # noqa: E402
from benchmarks.serve import hey, median_review, start, stop  # noqa: E402
from harness.postgres import PostgresServer, pg_bin  # noqa: E402


def scraped(url: str, name: str) -> float:
    return sum(
        float(line.split()[-1])
        for line in requests.get(url + "/metrics", timeout=5).text.splitlines()
        if line.startswith((name + "{", name + " "))
    )


def dropped(url: str) -> float:
    return scraped(url, "prediction_spool_dropped_records_total")


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
    median: str, env: dict[str, str], args: argparse.Namespace, server: PostgresServer,
    outage: bool = False,
) -> dict[str, float]:  # fmt: skip
    """One service under `hey`; with `outage`, the PostgreSQL server is stopped for the whole
    load and started again after it, and the spool's emptying is timed."""
    proc, url = start("service", env)
    try:
        warm = hey(url + "/api/v1/predict", {"text": median}, 3, args.clients)
        if outage:
            server.stop()
        cpu = postgres_cpu(server)
        try:
            result = hey(url + "/api/v1/predict", {"text": median}, args.seconds, args.clients)
        finally:
            if outage:
                server.start()
        result["postgres_cores"] = (postgres_cpu(server) - cpu) / args.seconds
        result["spooled"] = scraped(url, "prediction_spool_records")
        back = time.monotonic()
        while scraped(url, "prediction_spool_records") > 0:
            time.sleep(0.2)
        result["catch_up_s"] = time.monotonic() - back
        result["dropped"] = dropped(url)
        result["answered"] = warm["ok"] + result["ok"]
    finally:
        stop(proc)  # the flusher writes out what the spool still holds
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
    median = median_review(texts)
    server = PostgresServer(bindir)
    server.start()
    try:
        url = server.new_database()
        on: list[dict[str, float]] = []
        off: list[dict[str, float]] = []
        away: list[dict[str, float]] = []
        written, seconds, lost = 0, 0.0, 0
        for _ in range(args.rounds):  # interleaved: the host drifts by tens of percent
            before, _ = count_rows(url) if on else (0, 0)
            on.append(run(median, {"DATABASE_URL": url}, args, server))
            after, size = count_rows(url)
            written += after - before
            seconds += args.seconds + 3  # warm-up requests are stored too
            away.append(run(median, {"DATABASE_URL": url}, args, server, outage=True))
            stored, _ = count_rows(url)
            lost += int(away[-1]["answered"]) - (stored - after)
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
    for i, (a, b) in enumerate(zip(away, on, strict=True)):
        print(f"round {i + 1}:   database away       {a['rps']:7.0f} req/s p50 {a['p50_ms']:.2f} "
              f"p99 {a['p99_ms']:.2f} ms | vs. store on PostgreSQL {1 - a['rps'] / b['rps']:+.1%}; "
              f"{a['spooled']:,.0f} records spooled, written {a['catch_up_s']:.1f} s after the "
              f"server was back")  # fmt: skip
    print(f"outage:    {sum(int(a['answered']) for a in away):,} predictions answered while the "
          f"database was away, {lost} not stored, {sum(a['dropped'] for a in away):.0f} dropped "
          f"(target 0)")  # fmt: skip
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

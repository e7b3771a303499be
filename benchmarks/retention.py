"""Retention on a real PostgreSQL holding millions of predictions, with inserts running.

Usage:  python benchmarks/retention.py [--rows 5000000] [--rate 2000] [--seconds 60]

Starts a PostgreSQL server in a temporary directory (Debian's initdb/pg_ctl, as
../shared/RECIPES.md does), migrates it, loads `--rows` predictions older than the retention
window (server-side, generate_series), then for `--seconds` inserts new predictions at `--rate`
per second (batches of 100, as the flushers of several pods would) while retention runs as the
service runs it (`store.retention.Retention`, batches of 10,000 under its own statement
timeout, one run per interval: here back to back). Prints the deletion rate against the
insertion rate, how long the backlog took to clear, and the inserts' p50/p99 latency meanwhile.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from imdb_sentiment.store.database import PredictionStore
from imdb_sentiment.store.migrate import upgrade

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.postgres import PostgresServer, pg_bin

INSERT = text(
    "INSERT INTO predictions (request_id, item, created, probability, label) "
    "VALUES (:rid, 0, :now, 0.5, 'positive')"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--rate", type=int, default=2000, help="inserts per second meanwhile")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    bindir = pg_bin()
    if bindir is None:
        print("error: PostgreSQL is not installed (apt-get install postgresql)", file=sys.stderr)
        return 1
    server = PostgresServer(bindir)
    server.start()
    try:
        url = server.url()
        upgrade(url)
        engine = create_engine(url)
        started = time.monotonic()
        load = text(
            "INSERT INTO predictions (request_id, item, created, model_version, probability, "
            "label, unknown_share, tokens, text_chars) SELECT md5(i::text), 0, "
            ":old - i * 0.001, '1', random(), 'positive', 0.1, 50, 300 "
            "FROM generate_series(1, :rows) AS i"
        )
        with engine.begin() as db:
            db.execute(load, {"rows": args.rows, "old": time.time() - 30 * 86400})
            db.execute(text("ANALYZE predictions"))
        print(f"loaded {args.rows:,} predictions past the retention window in "
              f"{time.monotonic() - started:.0f} s")  # fmt: skip
        latencies: list[float] = []
        inserted = [0]
        stop = threading.Event()

        def insert() -> None:
            batch, n = 100, 0
            pause = batch / args.rate
            with engine.connect() as db:
                while not stop.is_set():
                    begun = time.perf_counter()
                    rows = [{"rid": f"new-{n}-{i}", "now": time.time()} for i in range(batch)]
                    db.execute(INSERT, rows)
                    db.commit()
                    took = time.perf_counter() - begun
                    latencies.append(took)
                    inserted[0] += batch
                    n += 1
                    time.sleep(max(0.0, pause - took))

        writer = threading.Thread(target=insert)
        store = PredictionStore(url, retention_hours=168, prune_interval_s=300,
                                retention_statement_s=60)  # fmt: skip
        writer.start()
        deleted, runs, behind_runs = 0, 0, 0
        cleared_at = None
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            count = store.retention.run()
            runs += 1
            deleted += count
            behind_runs += bool(store.retention.last and store.retention.last.behind)
            if count == 0 and cleared_at is None:
                cleared_at = time.monotonic() - started
                break
        elapsed = time.monotonic() - started
        stop.set()
        writer.join()
        ordered = sorted(latencies)
        rate_in = inserted[0] / elapsed
        print(f"retention: {deleted:,} deleted in {elapsed:.1f} s = {deleted / elapsed:,.0f}/s "
              f"({runs} runs, {behind_runs} stopped at their budget); inserts meanwhile "
              f"{rate_in:,.0f}/s, 100-row batch p50 {ordered[len(ordered) // 2] * 1000:.1f} ms, "
              f"p99 {ordered[int(len(ordered) * 0.99)] * 1000:.1f} ms")  # fmt: skip
        verdict = "keeps up" if deleted / elapsed > rate_in else "falls behind"
        cleared = f"backlog cleared in {cleared_at:.1f} s" if cleared_at else "backlog not cleared"
        print(f"{verdict}: deletes {deleted / elapsed / max(rate_in, 1):.1f}x the insert rate; "
              f"{cleared}")  # fmt: skip
        engine.dispose()
    finally:
        server.remove()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

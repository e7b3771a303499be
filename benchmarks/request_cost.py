"""Where a single-review request's CPU goes, without a network (issue 47): the service's WSGI
app called directly, one `/invocations` request at a time with the median test review, against
the ceiling (benchmarks/ceiling_app.py), the service without its store, and the service whose
records are built but not written to the spool (`Spool.append` made a no-op here: this side
prices the spool's write, and the flusher's work that follows from it; no configuration runs
it). `--what-if` adds a side that no configuration runs either: each request's spool body
appended to a file with one `write` instead (nothing reads it), the request path of a journal
in front of the spool.

Usage (after `make pipeline promote`):
    python benchmarks/request_cost.py [--rounds 3] [-n 3000] [--what-if]

Each side runs in a fresh process, sides interleaved within each round. Prints the CPU per
request of the whole process (its background threads included: the store's flusher, the
prediction log's writer) and of the request's thread, in µs. The store is SQLite in a temporary
directory, metrics in multiprocess mode, as a gunicorn worker runs them; gunicorn's own work
(HTTP parsing, sockets, the access line) is not here — benchmarks/servers.py measures that.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIDES = ("ceiling", "service", "service-without-store", "service-without-spool-write")
WHAT_IF = "service-with-journal-write"


def environ(path: str, body: bytes) -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "",
            "SERVER_NAME": "bench", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "REMOTE_ADDR": "127.0.0.1"}  # fmt: skip


def build(side: str) -> tuple[Any, str, bytes]:
    """The side's WSGI app, its path and request body (the environment is set up already)."""
    import pandas as pd

    from benchmarks.serve import median_review

    review = median_review(pd.read_parquet(ROOT / "data/raw/test.parquet").text)
    if side == "ceiling":
        from benchmarks.ceiling_app import app

        return app, "/api/v1/predict", json.dumps({"text": review}).encode()
    if side == "service-without-spool-write":
        from imdb_sentiment.store.spool import Spool

        Spool.append = lambda self, rows: len(rows)  # type: ignore[method-assign]
    if side == WHAT_IF:
        journal_write()
    from imdb_sentiment.serving.http.app import create_app
    from imdb_sentiment.serving.service_settings import load_settings

    return create_app(load_settings()), "/invocations", json.dumps({"inputs": [review]}).encode()


def journal_write() -> None:
    """`Spool.append` as one write of the request's body to an append-only file."""
    from imdb_sentiment.store.records import by_request, encode_request
    from imdb_sentiment.store.spool import Spool

    fd, _ = tempfile.mkstemp(suffix=".journal")  # one writer: each write lands at the end

    def append(self: Spool, rows: list[dict[str, Any]]) -> int:
        lines = "".join(encode_request(group) + "\n" for _, group in by_request(rows))
        os.write(fd, lines.encode())
        return len(rows)

    Spool.append = append  # type: ignore[method-assign]


def measure(side: str, requests: int) -> dict[str, float]:
    """In this process: warm up, then `requests` calls; CPU µs per request."""
    work = tempfile.mkdtemp()
    os.environ.update(PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(dir=work),
                      PREDICTION_SPOOL_DIR=tempfile.mkdtemp(dir=work),
                      DATABASE_URL="" if side == "service-without-store"
                      else f"sqlite:///{work}/predictions.db")  # fmt: skip
    app, path, body = build(side)

    def call(n: int) -> None:
        for _ in range(n):
            out = app(environ(path, body), lambda status, headers, exc=None: None)
            b"".join(out)
            getattr(out, "close", lambda: None)()

    call(300)
    process, thread = time.process_time(), time.thread_time()
    call(requests)
    return {
        "process_us": (time.process_time() - process) / requests * 1e6,
        "thread_us": (time.thread_time() - thread) / requests * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-n", "--requests", type=int, default=3000)
    parser.add_argument("--what-if", action="store_true", help=f"add the side {WHAT_IF}")
    # one side, in this process
    parser.add_argument("--side", choices=(*SIDES, WHAT_IF), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # the figures into a file: stdout carries the sampled prediction log
        Path(args.out).write_text(json.dumps(measure(args.side, args.requests)))
        return 0
    from benchmarks.pipeline import machine

    sides = (*SIDES, WHAT_IF) if args.what_if else SIDES
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for number in range(args.rounds):
        for side in sides:
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                subprocess.run([sys.executable, __file__, "--side", side, "-n",
                                str(args.requests), "--out", out.name], capture_output=True,
                               check=True, cwd=ROOT)  # fmt: skip
                figures = json.loads(Path(out.name).read_text())
            runs[side].append(figures)
            print(f"round {number + 1} {side:24s} process {figures['process_us']:6.0f} µs  "
                  f"request thread {figures['thread_us']:6.0f} µs", flush=True)  # fmt: skip
    print(f"machine: {machine()}; {args.requests} requests a side, rounds {args.rounds}")
    ceiling = statistics.median(r["process_us"] for r in runs["ceiling"])
    for side, figures in runs.items():
        process = statistics.median(r["process_us"] for r in figures)
        thread = statistics.median(r["thread_us"] for r in figures)
        print(f"{side:24s} median process {process:6.0f} µs/request ({process / ceiling:.1f}x the "
              f"ceiling), request thread {thread:6.0f} µs")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

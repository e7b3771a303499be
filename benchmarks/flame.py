"""Where a single-review request's time goes: py-spy on one loaded worker of the service as
`imdb-sentiment serve` runs it (gunicorn, 2 workers, every default: store, access log, metrics).

Usage (after `make pipeline promote`; needs `hey` and `py-spy` on PATH, e.g.
`pip install py-spy==0.4.1` in a venv of its own):

    python benchmarks/flame.py [--seconds 15] [--clients 8] [--svg docs/benchmarks/flame.svg]

`hey` posts the median-length test review from 8 keep-alive clients; meanwhile py-spy samples
one worker at 250 Hz for `--seconds` (wall-clock: its samples of a thread waiting in a
syscall count too, so time a worker spends waiting on its client shows). Prints the share of
samples in the frames that matter (inclusive) and writes the flame graph.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import machine  # noqa: E402
from benchmarks.serve import hey, median_review, start, stop  # noqa: E402

COUNTED = re.compile(r" \d+$")
FRAME = re.compile(r"(?P<name>.*) \((?P<file>[^()]*?):\d+\)$")
# (label, frame name, file name): inclusive shares of these are printed, in this order.
WATCHED = [
    ("gunicorn: accept + handle a connection", "handle", "sync.py"),
    ("gunicorn: gthread worker's request", "handle", "gthread.py"),
    ("gunicorn: parse the request", "__next__", "parser.py"),
    ("gunicorn: send the response", "write", "wsgi.py"),
    ("gunicorn: close the connection (waits for the client's FIN)", "close_graceful", "util.py"),
    ("Flask app (everything inside)", "wsgi_app", "app.py"),
    ("the predict view", "predict_json", "api.py"),
    ("scoring service: score + record", "score", "scoring.py"),
    ("the compiled scorer", "score_batch", "scorer.py"),
    ("the record into the spool", "append", "spool.py"),
    ("the flusher thread: spool → database", "run", "flusher.py"),
    ("the access log line", "access", "access_log.py"),
    ("metrics", "observe_request", "metrics.py"),
]


def shares(collapsed: Path) -> tuple[int, collections.Counter[tuple[str, str]]]:
    """Total samples, and per (frame, file) the samples whose stack holds it."""
    total, inclusive = 0, collections.Counter[tuple[str, str]]()
    pending = ""  # a frame's name can hold a newline (a module's docstring): join until a count
    for line in collapsed.read_text(errors="replace").splitlines():
        pending += line
        if not COUNTED.search(line):
            continue
        stack, count = pending.rsplit(" ", 1)
        pending = ""
        total += int(count)
        frames = {(m["name"], Path(m["file"]).name)
                  for m in map(FRAME.match, stack.split(";")) if m}  # fmt: skip
        for frame in frames:
            inclusive[frame] += int(count)
    return total, inclusive


def under_load(url: str, body: dict[str, object], args: argparse.Namespace,
               command: list[str]) -> dict[str, float]:  # fmt: skip
    """Run `command` (a py-spy recording) while `hey` loads the service; hey's figures."""
    load: dict[str, float] = {}
    loader = threading.Thread(target=lambda: load.update(
        hey(url + "/api/v1/predict", body, args.seconds + 4, args.clients)))  # fmt: skip
    loader.start()
    subprocess.run(command, check=True, capture_output=True)
    loader.join()
    return load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--svg", type=Path, help="write the flame graph here")
    args = parser.parse_args()
    for tool in ("hey", "py-spy"):
        if shutil.which(tool) is None:
            print(f"error: `{tool}` is not on PATH", file=sys.stderr)
            return 1
    texts = pd.read_parquet(ROOT / "data/raw/test.parquet").text
    median = median_review(texts)
    env = {"DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/predictions.db",
           "DATABASE_MIGRATE": "auto"}  # fmt: skip
    proc, url = start("service", env)
    out = Path(tempfile.mkdtemp())
    try:
        workers = [p for p in psutil.Process(proc.pid).children()
                   if "model-sync" not in " ".join(p.cmdline())]  # fmt: skip
        body: dict[str, object] = {"text": median}
        hey(url + "/api/v1/predict", body, 3, args.clients)  # warm-up
        record = ["py-spy", "record", "-r", "250", "-d", str(args.seconds), "--nonblocking",
                  "-p", str(workers[0].pid)]  # fmt: skip
        load = under_load(url, body, args, [*record, "-f", "raw", "-o", str(out / "raw.txt")])
        if args.svg:  # a second recording: py-spy writes one format per run
            under_load(url, body, args, [*record, "-f", "flamegraph", "-o", str(args.svg)])
    finally:
        stop(proc)
    total, inclusive = shares(out / "raw.txt")
    print(f"machine:  {machine()}")
    print(f"load:     {load['rps']:.0f} req/s, p99 {load['p99_ms']:.1f} ms ({args.clients} "
          f"clients, the median test review); {total} samples of one worker")  # fmt: skip
    for label, name, file in WATCHED:
        share = inclusive[(name, file)] / max(total, 1)
        if share:
            print(f"{share:6.1%}  {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

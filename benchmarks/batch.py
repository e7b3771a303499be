"""Batch scoring benchmark: `imdb-sentiment predict`, local and Spark engines.

Usage (after `make pipeline promote`: a production model in ./mlflow.db; the Spark
part needs `make install-spark` and Java 17):

    IMDB_SOURCE=../shared/data/aclImdb_v1.tar.gz python benchmarks/batch.py [--skip-spark]

Data: the archive's 100,000 reviews (train + test + unsup) as Parquet, and a 1,000,000-row file
made by repeating them. Prints, for the local CLI on the 1M-row file, wall-clock reviews/s
(process start and model loading included) and the peak RSS of the whole process tree; for
Spark `local[2]`, this project's engine and `mlflow.pyfunc.spark_udf` on the same registered
model, in the same session, on the same 100k-row file, and their ratio.
Targets (issue 11): local >= 10,000 reviews/s with peak RSS <= 1 GB; Spark >= 5x spark_udf.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd  # module level: pandas_udf reads the type hints from here
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from benchmarks.pipeline import machine
from imdb_sentiment.atomic import atomic_path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "models:/imdb-sentiment@production"
_REVIEW = re.compile(r"aclImdb/(train|test)/(pos|neg|unsup)/(\d+)_\d+\.txt$")


def archive_reviews(source: Path) -> pa.Table:
    """All 100,000 reviews of the archive, streamed (no extraction)."""
    splits, ids, texts = [], [], []
    with gzip.open(source, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            match = _REVIEW.search(member.name)
            handle = archive.extractfile(member) if match and member.isfile() else None
            if match is None or handle is None:
                continue
            splits.append(f"{match[1]}/{match[2]}")
            ids.append(int(match[3]))
            texts.append(handle.read().decode("utf-8"))
    return pa.table({"split": splits, "id": ids, "text": texts})


def make_data(source: Path, workdir: Path, copies: int) -> tuple[Path, Path]:
    small, large = workdir / "reviews-100k.parquet", workdir / f"reviews-{copies}x.parquet"
    if not small.exists():
        with atomic_path(small) as tmp:
            pq.write_table(archive_reviews(source), tmp, row_group_size=10_000)
    if not large.exists():
        table = pq.read_table(small)
        with atomic_path(large) as tmp, pq.ParquetWriter(tmp, table.schema) as writer:
            for _ in range(copies):
                writer.write_table(table, row_group_size=10_000)
    return small, large


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_local(source: Path, out: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds and peak tree RSS (GB) of one CLI run, and what it printed."""
    args = [str(Path(sys.executable).parent / "imdb-sentiment"), "predict", str(source), str(out)]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*args, "--overwrite"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    watched, peak, stop = psutil.Process(proc.pid), [0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], tree_rss(watched))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"predict failed:\n{output.decode()}")
    return elapsed, peak[0] / 1e9, output.decode().strip().splitlines()[-1]


def _warm_up(session: object, source: Path) -> None:
    """JVM, Parquet reader and Python workers started before either engine is timed."""
    from pyspark.sql import functions as sf

    @sf.pandas_udf("long")  # type: ignore[call-overload]
    def length(texts: pd.Series) -> pd.Series:
        return texts.str.len()

    frame = session.read.parquet(str(source)).limit(20_000)  # type: ignore[attr-defined]
    frame.select(length("text").alias("n")).agg(sf.sum("n")).collect()


def run_spark(source: Path, workdir: Path, rows: int) -> tuple[float, float, float]:
    """(engine reviews/s, spark_udf reviews/s, max |difference|) in one local[2] session."""
    import mlflow
    import numpy as np

    from imdb_sentiment.batch import spark as engine
    from imdb_sentiment.batch.job import Job
    from imdb_sentiment.batch.model import resolve_model
    from imdb_sentiment.config import load_settings

    model = resolve_model(MODEL, load_settings())
    session = engine.session("local[2]", "imdb-sentiment-bench")
    session.sparkContext.setLogLevel("ERROR")
    _warm_up(session, source)
    ours_out, udf_out = workdir / "spark-engine-out", workdir / "spark-udf-out"
    job = Job(
        str(source), str(ours_out), "parquet", "parquet", "text",
        model.scorer_dir, model.version, overwrite=True, prefix="pred_",
    )  # fmt: skip
    started = time.perf_counter()
    summary = engine.run(session, job)
    ours = time.perf_counter() - started
    assert summary.rows == rows, summary

    udf = mlflow.pyfunc.spark_udf(session, MODEL, env_manager="local", result_type="array<double>")
    frame = session.read.parquet(str(source))
    started = time.perf_counter()
    scored = frame.withColumn("udf_probability", udf("text")[1])
    scored.write.mode("overwrite").parquet(str(udf_out))
    theirs = time.perf_counter() - started

    a = pq.read_table(ours_out, columns=["split", "id", "pred_probability"]).to_pandas()
    b = pq.read_table(udf_out, columns=["split", "id", "udf_probability"]).to_pandas()
    joined = a.merge(b.drop_duplicates(["split", "id"]), on=["split", "id"])
    diff = float(np.abs(joined.pred_probability - joined.udf_probability).max())
    session.stop()
    return rows / ours, rows / theirs, diff


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "imdb-batch")
    parser.add_argument("--copies", type=int, default=10, help="large file = 100k x copies")
    parser.add_argument("--skip-spark", action="store_true")
    args = parser.parse_args()
    source = os.environ.get("IMDB_SOURCE")
    if not source:
        print("error: set IMDB_SOURCE to the IMDB archive", file=sys.stderr)
        return 1
    os.chdir(ROOT)  # ./mlflow.db and .cache/model of `make pipeline`
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'mlflow.db'}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    small, large = make_data(Path(source).resolve(), args.workdir, args.copies)
    rows = pq.ParquetFile(large).metadata.num_rows
    env = {**os.environ}
    print(f"machine:            {machine()}")
    seconds, peak_gb, said = run_local(large, args.workdir / "local-out.parquet", env)
    print(
        f"local CLI, {rows:,} rows: {rows / seconds:,.0f} reviews/s ({seconds:.1f} s wall, "
        f"start-up included), peak RSS {peak_gb:.2f} GB  (targets >= 10,000/s, <= 1 GB)"
    )
    print(f"  {said}")
    if args.skip_spark:
        return 0
    small_rows = pq.ParquetFile(small).metadata.num_rows
    ours, theirs, diff = run_spark(small, args.workdir, small_rows)
    print(
        f"Spark local[2], {small_rows:,} rows: engine {ours:,.0f} reviews/s, "
        f"mlflow spark_udf {theirs:,.0f} reviews/s, ratio {ours / theirs:.1f}x (target >= 5x)"
    )
    print(f"  max |engine - spark_udf| = {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

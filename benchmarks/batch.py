"""Batch scoring benchmark: `imdb-sentiment predict`, local and Spark engines.

Usage (after `make pipeline promote`: a production model in ./mlflow.db; the Spark
part needs `make install-spark` and Java 17):

    IMDB_SOURCE=../shared/data/aclImdb_v1.tar.gz python benchmarks/batch.py [--skip-spark]

Data: the archive's 100,000 reviews (train + test + unsup) and a 1,000,000-row file made by
repeating them, both written by `pandas.DataFrame.to_parquet` as users' files are (one row group).
Prints:
- the local CLI on the 1M-row file: wall-clock reviews/s (process start and model loading
  included) and the peak RSS of the whole process tree;
- a loopback standalone cluster (master + 1 worker with 2 cores, separate JVMs): spark-submit of
  this engine's entry point and spark-submit of a `mlflow.pyfunc.spark_udf` job on the same 100k
  file, each timed from spark-submit's start to its output committed, and their ratio;
- the same engine with its scorer replaced by a constant, same cluster and file: the ratio no
  scorer, however fast, can exceed on this cluster;
- Spark `local[2]` in one warmed-up session: the engine against spark_udf.
Targets (issue 19): local >= 10,000 reviews/s with peak RSS <= 1 GB; cluster >= 4x spark_udf;
local[2] 5x is the stretch goal.
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
from imdb_sentiment.core.atomic import atomic_path

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
    """As pandas writes them (`to_parquet`: one row group up to ~1M rows)."""
    small = workdir / "reviews-100k-pandas.parquet"
    large = workdir / f"reviews-{copies}x-pandas.parquet"
    if not small.exists():
        with atomic_path(small) as tmp:
            archive_reviews(source).to_pandas().to_parquet(tmp, index=False)
    if not large.exists():
        frame = pd.read_parquet(small)
        with atomic_path(large) as tmp:
            pd.concat([frame] * copies, ignore_index=True).to_parquet(tmp, index=False)
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
    from imdb_sentiment.core.model_settings import load_model_settings
    from imdb_sentiment.runtime.resolve import resolve_model

    model = resolve_model(MODEL, load_model_settings())
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


UDF_JOB = """
import sys
import mlflow
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("spark-udf-reference").getOrCreate()
udf = mlflow.pyfunc.spark_udf(spark, sys.argv[3], env_manager="local", result_type="array<double>")
frame = spark.read.parquet(sys.argv[1])
frame.withColumn("udf_probability", udf("text")[1]).write.mode("overwrite").parquet(sys.argv[2])
"""

# The engine with its scorer replaced by a constant: the same session, read, spread, Arrow
# transfer and write, so its time is what no scorer, however fast, can go below.
BOUND_JOB = """
import sys
import numpy as np
import pandas as pd
from imdb_sentiment.batch import spark

def constant(archive, texts):
    return pd.DataFrame({"probability": np.full(len(texts), 0.5), "label": "positive"})

spark.score_texts = constant
raise SystemExit(spark.main())
"""


def submit(master: str, args: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one spark-submit, start to output committed."""
    spark_submit = str(Path(sys.executable).parent / "spark-submit")
    started = time.perf_counter()
    result = subprocess.run(
        [spark_submit, "--master", master, "--conf", "spark.log.level=WARN", *args],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"spark-submit failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return elapsed


def run_cluster(
    source: Path, workdir: Path, rows: int, rounds: int
) -> list[tuple[float, float, float]]:
    """(engine s, spark_udf s, scoring-free bound s) per round, interleaved, on one loopback
    standalone cluster."""
    from harness.spark_cluster import standalone_cluster

    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    package = workdir / "imdb_sentiment.zip"
    subprocess.run(
        [sys.executable, "-m", "zipfile", "-c", str(package), str(ROOT / "src/imdb_sentiment")],
        check=True,
    )
    entry = ROOT / "src/imdb_sentiment/batch/spark.py"
    job, bound_job = workdir / "spark_udf_job.py", workdir / "bound_job.py"
    job.write_text(UDF_JOB)
    bound_job.write_text(BOUND_JOB)
    times = []
    with standalone_cluster(workdir / "cluster") as master:
        for _ in range(rounds):
            ours = submit(master, ["--py-files", str(package), str(entry), str(source),
                                   str(workdir / "cluster-engine.parquet"), "--model", MODEL,
                                   "--overwrite"], env)  # fmt: skip
            theirs = submit(master, [str(job), str(source), str(workdir / "cluster-udf.parquet"),
                                     MODEL], env)  # fmt: skip
            bound = submit(master, ["--py-files", str(package), str(bound_job), str(source),
                                    str(workdir / "cluster-bound.parquet"), "--model", MODEL,
                                    "--overwrite"], env)  # fmt: skip
            times.append((ours, theirs, bound))
    out = pq.read_table(workdir / "cluster-engine.parquet", columns=["id"])
    assert out.num_rows == rows, out.num_rows
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "imdb-batch")
    parser.add_argument("--copies", type=int, default=10, help="large file = 100k x copies")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--rounds", type=int, default=2, help="cluster rounds (interleaved)")
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
    if not args.skip_local:
        seconds, peak_gb, said = run_local(large, args.workdir / "local-out.parquet", env)
        print(
            f"local CLI, {rows:,} rows: {rows / seconds:,.0f} reviews/s ({seconds:.1f} s wall, "
            f"start-up included), peak RSS {peak_gb:.2f} GB  (targets >= 10,000/s, <= 1 GB)"
        )
        print(f"  {said}")
    if args.skip_spark:
        return 0
    small_rows = pq.ParquetFile(small).metadata.num_rows
    rounds = run_cluster(small, args.workdir, small_rows, args.rounds)
    for i, (ours_s, udf_s, bound_s) in enumerate(rounds):
        print(
            f"standalone cluster (1 worker, 2 cores), {small_rows:,} rows, spark-submit end to "
            f"end, round {i + 1}: engine {ours_s:.1f} s ({small_rows / ours_s:,.0f} reviews/s), "
            f"spark_udf {udf_s:.1f} s ({small_rows / udf_s:,.0f} reviews/s), "
            f"ratio {udf_s / ours_s:.1f}x (target >= 4x); engine with a constant for the scorer "
            f"{bound_s:.1f} s, ratio {udf_s / bound_s:.1f}x (the bound a faster scorer meets)"
        )
    ours, theirs, diff = run_spark(small, args.workdir, small_rows)
    print(
        f"Spark local[2], {small_rows:,} rows: engine {ours:,.0f} reviews/s, "
        f"mlflow spark_udf {theirs:,.0f} reviews/s, ratio {ours / theirs:.1f}x (target >= 5x)"
    )
    print(f"  max |engine - spark_udf| = {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The Spark engine: the same scoring as the local engine, on any Spark master.

The driver resolves the model (MLflow, once) and ships two single files, the only form Spark
distributes on every cluster manager (a directory works in local mode only): the compiled
scorer as a zip (`SparkContext.addFile`) and, unless spark-submit's `--py-files` already carries
it, this package's code as a zip (`addPyFile`). Executors score Arrow batches in a pandas UDF with
`batch.executor.score_texts`, unpacking and loading the scorer once per Python worker. An input
that arrives in fewer partitions than the cluster has cores (one Parquet row group, one
multi-line CSV) is repartitioned so that every core works. Input and output are any
Spark-readable path (local, `s3a://`, `hdfs://`, …); OUTPUT is a directory of part files.

Also the `spark-submit` entry point:

    spark-submit --py-files imdb_sentiment.zip "$SPARK_ENTRY" INPUT OUTPUT \\
        --model models:/imdb-sentiment@production

with SPARK_ENTRY the path of this file (`python -c 'import imdb_sentiment.batch.spark as m;
print(m.__file__)'`)

(the master comes from spark-submit; see docs/batch.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd  # at module level: pandas_udf resolves the UDF's type hints from here

from imdb_sentiment.batch.executor import score_texts
from imdb_sentiment.batch.files import Format, added, check_schema
from imdb_sentiment.batch.job import Job, Summary
from imdb_sentiment.core.config import DEFAULT_MODEL_URI
from imdb_sentiment.core.errors import PipelineError, first_line

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

T = TypeVar("T")
SPARK_FORMAT = {"csv": "csv", "parquet": "parquet", "jsonl": "json"}
# CSV as pyarrow and most tools write it: a header, RFC 4180 quotes, reviews spanning lines.
NO_TEXT = "imdb-sentiment: rows without text"  # an executor's failure the driver recognises
CSV_OPTIONS = {"header": "true", "multiLine": "true", "escape": '"'}
# Extension modules do not import from a zip (the runtime falls back to Python) and C sources
# are not read at run time.
NOT_SHIPPED = {".so", ".c", ".pyc"}


def session(
    master: str | None,
    app_name: str = "imdb-sentiment-predict",
    log_level: str | None = None,
    conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """A Spark session; `master` None leaves it (and logging) to spark-submit. `conf` applies
    to a JVM started here (driver settings included), as spark-submit's `--conf` would."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise PipelineError("PySpark is not installed: run `make install-spark`") from exc
    if master:
        check_master(master)
    # py4j logs its connections at INFO: noise after the job's own last line.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    # Executors on this machine run this interpreter; elsewhere PYSPARK_PYTHON says which.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).config("spark.ui.enabled", "false")
    if master:
        builder = builder.master(master)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    if log_level:  # the CLI: Spark's log and progress bar only where a person reads them
        builder = builder.config("spark.log.level", log_level)
        builder = builder.config("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
    try:
        return builder.getOrCreate()
    except Exception as exc:  # py4j / JVM start-up errors: one line, not a Java stack
        where = master or "from spark-submit"
        raise PipelineError(f"cannot start Spark (master {where}): {first_line(exc)}") from exc


def session_and(
    resolve: Callable[[], T], master: str | None, log_level: str | None = None
) -> tuple[SparkSession, T]:
    """A session, and `resolve()` run meanwhile: the JVM's start-up and the model's resolution
    in the registry (MLflow's import, the download) are each seconds, and independent."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="resolve-model") as pool:
        resolving = pool.submit(resolve)
        try:
            spark = session(master, log_level=log_level)
        except BaseException:
            resolving.result()  # a model error is the one to report, if there is one
            raise
        return spark, resolving.result()


def check_master(master: str, timeout: float = 5.0) -> None:
    """A standalone master that does not answer fails here, in one line, rather than after
    Spark's own minute of retries."""
    if not master.startswith("spark://"):
        return  # local[*], yarn, k8s://, …: Spark reports those itself, and quickly
    for address in master.removeprefix("spark://").split(","):  # HA: several masters
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
            return
        except (OSError, ValueError):
            continue
    raise PipelineError(f"cannot reach the Spark master {master}")


def run(spark: SparkSession, job: Job) -> Summary:
    from pyspark.sql import functions as sf

    frame = _spread(spark, _read(spark, job), job)
    if job.ship_package:
        ship_package(spark)
    shipped = _ship_scorer(spark, job)
    rows, missing = spark.sparkContext.accumulator(0), spark.sparkContext.accumulator(0)
    fail, column = job.fail_on_missing_text, job.text_column

    # Only the text column travels to Python and only two columns come back (a mapInPandas
    # over whole rows would ship every review twice).
    @sf.pandas_udf("probability double, label string")  # type: ignore[call-overload]
    def score(texts: pd.Series) -> pd.DataFrame:
        scored = score_texts(shipped, texts)
        bad = int(scored["probability"].isna().sum())
        if bad and fail:
            raise ValueError(f"{NO_TEXT}: {bad} row(s) without text in column {column!r}")
        rows.add(len(scored))
        missing.add(bad)
        return scored

    probability, label, version = added(job.prefix)
    scored = frame.withColumn("__scores", score(sf.col(column)))
    scored = scored.select(
        *(sf.col(f"`{name}`") for name in frame.columns),
        sf.col("__scores.probability").alias(probability),
        sf.col("__scores.label").alias(label),
        sf.lit(job.version).alias(version),
    )
    _write(scored, job)
    return Summary(int(rows.value), int(missing.value))


def _options(fmt: Format) -> dict[str, str]:
    return CSV_OPTIONS if fmt == "csv" else {}


def _read(spark: SparkSession, job: Job) -> DataFrame:
    from pyspark.errors import PySparkException

    try:
        reader = spark.read.format(SPARK_FORMAT[job.input_format]).options(
            **_options(job.input_format)
        )
        frame = reader.load(job.input)
        arrow = _arrow_schema(frame)
    except PySparkException as exc:
        raise PipelineError(
            f"cannot read {job.input} as {job.input_format}: {first_line(exc)}"
        ) from exc
    check_schema(arrow, job.text_column, job.input, job.prefix)
    return frame


def _arrow_schema(frame: DataFrame):  # type: ignore[no-untyped-def]
    import pyarrow as pa
    from pyspark.sql.types import StringType

    return pa.schema(
        [
            pa.field(f.name, pa.string() if isinstance(f.dataType, StringType) else pa.null())
            for f in frame.schema.fields
        ]
    )


def _spread(spark: SparkSession, frame: DataFrame, job: Job) -> DataFrame:
    """At least one busy partition per core of the cluster (or `job.partitions`), whatever the
    input's layout: one Parquet row group or one multi-line CSV is one task on one core."""
    wanted = job.partitions or spark.sparkContext.defaultParallelism
    if job.partitions or _busy_partitions(frame, job.input_format, wanted) < wanted:
        return frame.repartition(wanted)
    return frame


def _busy_partitions(frame: DataFrame, fmt: Format, enough: int) -> int:
    """Partitions that can hold rows, counted up to `enough`. Spark plans Parquet splits by
    bytes but gives each row group to one split, so a file pandas wrote (one row group) plans
    several splits and fills one: the row groups are the truth, read from the files' footers.
    Multi-line CSV files are never split, and JSON Lines splits evenly: the plan is the truth."""
    if fmt != "parquet":
        return frame.rdd.getNumPartitions()
    try:
        return _row_groups(frame, enough)
    except Exception:  # no JVM gateway (Spark Connect): ask the cluster instead
        from pyspark.sql import functions as sf

        return frame.select(sf.spark_partition_id()).distinct().count()


def _row_groups(frame: DataFrame, enough: int) -> int:
    """Row groups of the input's Parquet files, from their footers through Hadoop's file system
    on the driver (local, s3a://, hdfs://, …): no Spark job."""
    spark = frame.sparkSession
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    parquet = jvm.org.apache.parquet.hadoop  # type: ignore[union-attr]
    total = 0
    for name in frame.inputFiles():
        path = jvm.org.apache.hadoop.fs.Path(name)  # type: ignore[union-attr]
        reader = parquet.ParquetFileReader.open(parquet.util.HadoopInputFile.fromPath(path, conf))
        try:
            total += reader.getRowGroups().size()
        finally:
            reader.close()
        if total >= enough:
            break
    return total


def _ship_scorer(spark: SparkSession, job: Job) -> str:
    """The scorer as one zip, named for this version and job, handed to every executor."""
    name = f"imdb-sentiment-scorer-v{job.version}-{uuid.uuid4().hex[:8]}.zip"
    archive = Path(tempfile.mkdtemp(prefix="imdb-sentiment-spark-")) / name
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:  # .npz is compressed already
        for path in sorted(job.scorer_dir.iterdir()):
            out.write(path, path.name)
    spark.sparkContext.addFile(str(archive))
    return name


def ship_package(spark: SparkSession) -> None:
    """This package's code for the executors' Python path, unless it is there already
    (spark-submit --py-files puts the zip the driver imports from on theirs too)."""
    import imdb_sentiment

    package = Path(imdb_sentiment.__file__).parent
    if not package.is_dir():  # imported from a zip: --py-files shipped it
        return
    archive = Path(tempfile.mkdtemp(prefix="imdb-sentiment-spark-")) / "imdb_sentiment.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(package.rglob("*")):  # code and the data files it reads
            if (
                path.is_file()
                and path.suffix not in NOT_SHIPPED
                and "__pycache__" not in path.parts
            ):
                out.write(path, path.relative_to(package.parent))
    spark.sparkContext.addPyFile(str(archive))


def _write(scored: DataFrame, job: Job) -> None:
    writer = scored.write.format(SPARK_FORMAT[job.output_format]).options(
        **_options(job.output_format)
    )
    try:
        _save(writer, job)
    except PipelineError:
        raise
    except Exception as exc:
        raise job_failure(exc, job) from exc


_MISSING_MODULE = re.compile(r"No module named '([^']+)'")


def job_failure(exc: BaseException, job: Job) -> PipelineError:
    """What went wrong on the executors, in one line (the py4j message holds Java and Python
    stacks)."""
    if NO_TEXT in str(exc):
        return PipelineError(f"{job.input} has rows without text in column {job.text_column!r}")
    return failure(exc)


def failure(exc: BaseException) -> PipelineError:
    """Any Spark job's failure in one line: a module the executors lack, else the innermost
    exception line."""
    text = str(exc)
    missing = _MISSING_MODULE.search(text)
    if missing:
        return PipelineError(
            f"Spark executors cannot import {missing[1]!r}: their Python (PYSPARK_PYTHON) needs "
            "numpy, pandas and pyarrow (docs/batch.md)"
        )
    if _OUT_OF_MEMORY.search(text):
        return PipelineError(
            "Spark job failed: an executor ran out of memory (give executors more, "
            "spark.executor.memory, or the job smaller pieces)"
        )
    return PipelineError(f"Spark job failed: {_cause(text)}")


# An executor JVM's OutOfMemoryError (its exit code 52, as the task failure reports it).
_OUT_OF_MEMORY = re.compile(r"exited with code 52|java\.lang\.OutOfMemoryError")


def _cause(text: str) -> str:
    """The innermost exception line of a Spark failure, else its first line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_.]*(Error|Exception): ", line):
            return line
    return lines[0] if lines else "unknown error"


def _save(writer: Any, job: Job) -> None:
    if "://" in job.output and not job.output.startswith("file://"):
        # Object stores: Spark's commit protocol marks a complete output with _SUCCESS.
        writer.mode("overwrite" if job.overwrite else "errorifexists").save(job.output)
        return
    final = Path(job.output.removeprefix("file://"))
    if final.exists() and not job.overwrite:
        raise PipelineError(f"output exists: {final} (use --overwrite)")
    staging = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        writer.mode("errorifexists").save(str(staging))
        if final.exists():
            shutil.rmtree(final) if final.is_dir() else final.unlink()
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry point: `INPUT OUTPUT [--model URI] …` (see module docstring)."""
    from imdb_sentiment.batch.files import detect_format
    from imdb_sentiment.core.model_settings import load_model_settings
    from imdb_sentiment.runtime.resolve import resolve_model

    parser = argparse.ArgumentParser(description="Score a review file on Spark.")
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--model", default=DEFAULT_MODEL_URI)
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--format")
    parser.add_argument("--output-format")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--partitions", type=int, default=None)
    parser.add_argument(
        "--installed-package",
        action="store_true",
        help="executors import the package installed in their Python (its compiled kernel "
        "included) instead of the pure-Python zip the driver ships",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_model_settings()
        spark, model = session_and(lambda: resolve_model(args.model, settings), None)
        job = Job(
            args.input,
            args.output,
            detect_format(args.input, args.format),
            detect_format(args.output, args.output_format),
            args.text_column,
            model.scorer_dir,
            model.version,
            overwrite=args.overwrite,
            prefix=args.prefix,
            partitions=args.partitions,
            ship_package=not args.installed_package,
        )
        summary = run(spark, job)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"scored {summary.rows:,} reviews with {model.describe()} into {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

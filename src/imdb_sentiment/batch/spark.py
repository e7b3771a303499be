"""The Spark engine: the same scoring as the local engine, on any Spark cluster.

The driver resolves the model (MLflow, once) and ships the compiled scorer's folder to the
executors with `SparkContext.addFile`; executors score Arrow batches in `mapInPandas` with
`batch.executor.score_frames`, loading the scorer once per Python worker. Input and output are
any Spark-readable path (local, `s3a://`, `hdfs://`, …); OUTPUT is a directory of part files.

Also the `spark-submit` entry point:

    spark-submit --py-files imdb_sentiment.zip "$SPARK_ENTRY" INPUT OUTPUT \\
        --model models:/imdb-sentiment@production

with SPARK_ENTRY the path of this file (`python -c 'import imdb_sentiment.batch.spark as m;
print(m.__file__)'`)

(the master comes from spark-submit; see docs/batch.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd  # at module level: pandas_udf resolves the UDF's type hints from here

from imdb_sentiment.batch.executor import score_texts
from imdb_sentiment.batch.files import Format, added, check_schema
from imdb_sentiment.batch.job import Job, Summary
from imdb_sentiment.errors import PipelineError, first_line

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SPARK_FORMAT = {"csv": "csv", "parquet": "parquet", "jsonl": "json"}
# CSV as pyarrow and most tools write it: a header, RFC 4180 quotes, reviews spanning lines.
NO_TEXT = "imdb-sentiment: rows without text"  # an executor's failure the driver recognises
CSV_OPTIONS = {"header": "true", "multiLine": "true", "escape": '"'}


def session(master: str | None, app_name: str = "imdb-sentiment-predict") -> SparkSession:
    """A Spark session; `master` None leaves it to spark-submit or the environment."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise PipelineError("PySpark is not installed: run `make install-spark`") from exc
    # Executors must run this interpreter (its venv holds numpy, pyarrow and this package).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).config("spark.ui.enabled", "false")
    if master:
        builder = builder.master(master)
    return builder.getOrCreate()


def run(spark: SparkSession, job: Job) -> Summary:
    from pyspark.sql import functions as sf

    frame = _read(spark, job)
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


def _ship_scorer(spark: SparkSession, job: Job) -> str:
    """Copy the scorer under a name unique to this version, hand it to every executor."""
    name = f"imdb-sentiment-scorer-v{job.version}-{uuid.uuid4().hex[:8]}"
    staging = Path(tempfile.mkdtemp(prefix="imdb-sentiment-spark-")) / name
    shutil.copytree(job.scorer_dir, staging)
    spark.sparkContext.addFile(str(staging), recursive=True)
    return name


def _write(scored: DataFrame, job: Job) -> None:
    writer = scored.write.format(SPARK_FORMAT[job.output_format]).options(
        **_options(job.output_format)
    )
    try:
        _save(writer, job)
    except Exception as exc:
        if NO_TEXT in str(exc):
            raise PipelineError(
                f"{job.input} has rows without text in column {job.text_column!r}"
            ) from exc
        if isinstance(exc, PipelineError):
            raise
        raise PipelineError(f"Spark job failed: {first_line(exc)}") from exc


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
    from imdb_sentiment.batch.model import resolve_model
    from imdb_sentiment.config import load_settings

    parser = argparse.ArgumentParser(description="Score a review file on Spark.")
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--model", default="models:/imdb-sentiment@production")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--format")
    parser.add_argument("--output-format")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--prefix", default="")
    args = parser.parse_args(argv)
    try:
        model = resolve_model(args.model, load_settings())
        job = Job(
            args.input,
            args.output,
            detect_format(args.input, args.format),
            detect_format(args.output, args.output_format),
            args.text_column,
            model.scorer_dir,
            model.version,
            args.overwrite,
            prefix=args.prefix,
        )
        summary = run(session(None), job)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"scored {summary.rows} reviews with {model.describe()} into {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

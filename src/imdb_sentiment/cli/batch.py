"""Batch scoring of files: `imdb-sentiment predict`."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import typer

from imdb_sentiment.cli.common import area, clean_errors
from imdb_sentiment.core.config import DEFAULT_MODEL_URI
from imdb_sentiment.core.errors import PipelineError

if TYPE_CHECKING:  # nothing heavy at import: each command imports what it uses
    from imdb_sentiment.batch.job import Job, Summary

app = area()


@app.command()
@clean_errors
def predict(
    input_path: str = typer.Argument(..., metavar="INPUT", help="CSV, Parquet or JSON Lines file."),
    output: str = typer.Argument(..., metavar="OUTPUT", help="File (local) or folder (Spark)."),
    model: str = typer.Option(
        DEFAULT_MODEL_URI,
        help="models:/<name>@<alias> or models:/<name>/<version>; resolved once, recorded.",
    ),
    text_column: str = typer.Option("text", help="Column holding the review text."),
    input_format: str | None = typer.Option(
        None, "--format", help="Input format: csv, parquet, jsonl (default: from extension)."
    ),
    output_format: str | None = typer.Option(
        None, help="Output format (default: from OUTPUT's extension)."
    ),
    engine: str = typer.Option("local", help="local (process pool) or spark."),
    workers: int = typer.Option(
        0, min=0, help="Local scoring processes (default: one per core; 1 = in-process)."
    ),
    master: str | None = typer.Option(
        None, help="Spark master (default: $SPARK_MASTER or local[*])."
    ),
    partitions: int | None = typer.Option(
        None, min=1, help="Spark partitions to score in (default: at least one per core)."
    ),
    installed_package: bool = typer.Option(
        False,
        "--installed-package",
        help="Spark: executors import the package installed in their Python (with the compiled "
        "kernel) instead of the pure-Python zip the driver ships.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTPUT."),
    prefix: str = typer.Option("", help="Prefix of the added columns (e.g. pred_)."),
    fail_on_missing_text: bool = typer.Option(
        False,
        "--fail-on-missing-text",
        help="Fail on a row without text (default: null probability and label, counted).",
    ),
) -> None:
    """Score a file of reviews: every input column plus probability, label, model_version."""
    import os

    from imdb_sentiment.batch.files import detect_format
    from imdb_sentiment.batch.job import Job
    from imdb_sentiment.core.model_settings import load_model_settings
    from imdb_sentiment.runtime.resolve import resolve_model

    if engine not in ("local", "spark"):
        raise PipelineError(f"unknown engine {engine!r}: use local or spark")
    in_fmt, out_fmt = detect_format(input_path, input_format), detect_format(output, output_format)
    settings = load_model_settings()
    session = None
    if engine == "spark":
        from imdb_sentiment.batch import spark

        session, resolved = spark.session_and(
            lambda: resolve_model(model, settings),
            master or os.environ.get("SPARK_MASTER") or "local[*]",
            log_level=os.environ.get("SPARK_LOG_LEVEL", "OFF"),
        )
    else:
        resolved = resolve_model(model, settings)
    job = Job(
        input_path,
        output,
        in_fmt,
        out_fmt,
        text_column,
        resolved.scorer_dir,
        resolved.version,
        workers or os.cpu_count() or 1,
        overwrite,
        fail_on_missing_text,
        prefix,
        partitions,
        ship_package=not installed_package,
    )
    summary = spark.run(session, job) if session is not None else _with_progress(job)
    typer.echo(f"scored {summary.rows:,} reviews with {resolved.describe()} into {output}")
    if engine == "local":
        scored = summary.rows - summary.missing_text
        share = summary.python_path / scored if scored else 0.0
        typer.echo(
            f"scorer: {summary.scorer}; {summary.python_path:,} review(s) ({share:.1%}) took the "
            "Python path" + (" (not Latin-1)" if summary.scorer == "compiled" else ""),
            err=True,
        )
    if summary.missing_text:
        typer.echo(
            f"{summary.missing_text:,} row(s) had no text: probability and label left null",
            err=True,
        )


def _with_progress(job: Job) -> Summary:
    """Run a local batch job, with a progress bar (rate, ETA) only on a terminal."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from imdb_sentiment.batch import local

    if not sys.stderr.isatty():
        return local.run(job)
    columns = (
        TextColumn("[bold]scoring"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[rows]:,} reviews  {task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("score", total=1.0, rows=0, rate="")
        start = time.monotonic()

        def update(rows: int, done: float) -> None:
            rate = rows / max(time.monotonic() - start, 1e-9)
            bar.update(task, completed=done, rows=rows, rate=f"{rate:,.0f}/s")

        return local.run(job, update)

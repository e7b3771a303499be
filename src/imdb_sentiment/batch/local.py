"""The local engine: stream a file's record batches through a pool of scoring processes and
write them, in order, to a temporary output that is renamed when complete.

At most 2 chunks per worker are in flight, so memory stays flat whatever the file size.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import ExitStack
from functools import partial
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from imdb_sentiment.batch import executor
from imdb_sentiment.batch.files import Reader, output_schema, writer
from imdb_sentiment.batch.job import Job, Summary
from imdb_sentiment.core.errors import PipelineError
from imdb_sentiment.runtime import kernel
from imdb_sentiment.runtime.scorer_files import read_meta, read_threshold

# Rows per pool task: big enough that pickling and scheduling stay a small share of the work.
TASK_ROWS = 2048


Progress = Callable[[int, float], None]  # (rows written so far, fraction of input read)


def run(job: Job, progress: Progress | None = None) -> Summary:
    reader = Reader(Path(job.input), job.input_format, job.text_column, job.prefix)
    batches = reader.batches()
    first = next(batches, None)  # opens the file: its schema is checked before any work
    assert reader.schema is not None
    schema = output_schema(reader.schema, job.prefix)
    rows = missing = python_path = 0
    threshold = read_threshold(Path(job.scorer_dir))  # labels as the model gives them
    with ExitStack() as stack:
        out = stack.enter_context(
            writer(Path(job.output), job.output_format, schema, job.overwrite)
        )
        pool = stack.enter_context(_pool(job))
        chunks = _chunks(first, batches)
        for batch, (probability, python) in _scored(pool, chunks, str(job.scorer_dir), job):
            bad = int(np.isnan(probability).sum())
            if bad and job.fail_on_missing_text:
                raise PipelineError(
                    f"row {rows + int(np.flatnonzero(np.isnan(probability))[0]) + 1} of "
                    f"{job.input} has no text in column {job.text_column!r}"
                )
            out.write(_with_scores(batch, probability, job.version, schema, threshold))
            rows += batch.num_rows
            missing += bad
            python_path += python
            if progress is not None:
                progress(rows, reader.done)
    compiled = kernel.scores_saved(read_meta(Path(job.scorer_dir)))
    return Summary(rows, missing, "compiled" if compiled else "python", python_path)


def _chunks(
    first: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Record batches re-cut to TASK_ROWS rows (CSV blocks can hold tens of thousands)."""
    if first is None:
        return
    for batch in chain([first], rest):
        yield from _split(batch)


def _split(batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
    for start in range(0, batch.num_rows, TASK_ROWS):
        yield batch.slice(start, TASK_ROWS)


def _scored(
    pool: Executor | None, chunks: Iterator[pa.RecordBatch], scorer_dir: str, job: Job
) -> Iterator[tuple[pa.RecordBatch, executor.Chunk]]:
    column = job.text_column
    if pool is None:
        for batch in chunks:
            yield batch, executor.score_chunk(scorer_dir, batch.column(column).to_pylist())
        return
    task = partial(executor.score_chunk, scorer_dir)
    pending: deque[tuple[pa.RecordBatch, Future[executor.Chunk]]] = deque()
    for batch in chunks:
        pending.append((batch, pool.submit(task, batch.column(column).to_pylist())))
        if len(pending) >= 2 * job.workers:
            done, future = pending.popleft()
            yield done, future.result()
    while pending:
        done, future = pending.popleft()
        yield done, future.result()


def _pool(job: Job) -> Executor | _NoPool:
    if job.workers <= 1:
        return _NoPool()
    # forkserver: workers start clean, not as forks of a process holding pyarrow's threads.
    context = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(job.workers, mp_context=context)


class _NoPool:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def _with_scores(
    batch: pa.RecordBatch,
    probability: NDArray[np.float64],
    version: str,
    schema: pa.Schema,
    threshold: float,
) -> pa.RecordBatch:
    missing = np.isnan(probability)
    label = pa.array(executor.labels(probability, threshold), type=pa.string())
    return pa.RecordBatch.from_arrays(
        [
            *batch.columns,
            pa.array(probability, mask=missing, type=pa.float64()),
            label,
            pa.array([version] * batch.num_rows, type=pa.string()),
        ],
        schema=schema,
    )

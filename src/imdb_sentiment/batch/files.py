"""Review files in and out, in chunks: CSV, Parquet and JSON Lines through pyarrow's streaming
readers and writers, so memory stays flat whatever the file size.

Every input column is passed through; scoring adds `probability`, `label` and `model_version`.
Output goes to a temporary file beside OUTPUT and is renamed only when complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from imdb_sentiment.core.atomic import atomic_path
from imdb_sentiment.core.errors import PipelineError, first_line
from imdb_sentiment.core.io import streaming_parquet

Format = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "parquet", "jsonl")
EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
ADDED = ("probability", "label", "model_version")  # the columns scoring adds, after a prefix
# Blocks of this many bytes (CSV/JSON) and rows (Parquet): large enough to amortise parsing,
# small enough that a chunk of 1,000-character reviews stays a few MB.
BLOCK_BYTES = 4 << 20
PARQUET_ROWS = 4096
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError)


def detect_format(path: str, override: str | None) -> Format:
    if override is not None:
        if override not in FORMATS:
            raise PipelineError(f"unknown format {override!r}: use one of {', '.join(FORMATS)}")
        return override
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        known = ", ".join(EXTENSIONS)
        raise PipelineError(
            f"cannot tell the format of {path} from its extension ({known}): use --format"
        )
    return EXTENSIONS[suffix]


@dataclass
class Reader:
    """Record batches of one input file. `done` is the fraction read so far (for an ETA);
    `schema` is known once `open` has run."""

    path: Path
    fmt: Format
    text_column: str
    prefix: str = ""
    done: float = 0.0
    schema: pa.Schema | None = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        batches, handle, total_rows = self._open()
        size = max(os.path.getsize(self.path), 1)
        rows = 0
        try:
            for batch in batches:
                rows += batch.num_rows
                if total_rows is not None:
                    self.done = rows / max(total_rows, 1)
                elif handle is not None:
                    self.done = min(handle.tell() / size, 1.0)
                yield batch
            self.done = 1.0
        except _ARROW_ERRORS as exc:
            raise self._unreadable(exc) from exc
        finally:
            if handle is not None:
                handle.close()

    def _open(self) -> tuple[Iterator[pa.RecordBatch], IO[bytes] | None, int | None]:
        if not self.path.is_file():
            raise PipelineError(f"input not found: {self.path}")
        handle: IO[bytes] | None = None
        try:
            if self.fmt == "parquet":
                parquet = streaming_parquet(self.path)
                self._check(parquet.schema_arrow)
                rows = parquet.metadata.num_rows
                return parquet.iter_batches(batch_size=PARQUET_ROWS), None, rows
            handle = open(self.path, "rb")  # noqa: SIM115 - closed by batches()
            reader = self._text_reader(handle)
            self._check(reader.schema)
            return iter(reader), handle, None
        except BaseException as exc:
            if handle is not None:
                handle.close()
            if isinstance(exc, _ARROW_ERRORS):
                raise self._unreadable(exc) from exc
            raise

    def _text_reader(self, handle: IO[bytes]) -> pa.RecordBatchReader:
        text = {self.text_column: pa.string()}
        if self.fmt == "csv":
            return pa_csv.open_csv(
                handle,
                read_options=pa_csv.ReadOptions(block_size=BLOCK_BYTES),
                parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                convert_options=pa_csv.ConvertOptions(column_types=text),
            )
        return pa_json.open_json(
            handle,
            read_options=pa_json.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pa_json.ParseOptions(
                explicit_schema=pa.schema(text), unexpected_field_behavior="infer"
            ),
        )

    def _check(self, schema: pa.Schema) -> None:
        check_schema(schema, self.text_column, str(self.path), self.prefix)
        self.schema = schema

    def _unreadable(self, exc: BaseException) -> PipelineError:
        return PipelineError(f"cannot read {self.path} as {self.fmt}: {first_line(exc)}")


def added(prefix: str) -> tuple[str, str, str]:
    """Names of the probability, label and model_version columns."""
    probability, label, version = (prefix + name for name in ADDED)
    return probability, label, version


def check_schema(schema: pa.Schema, text_column: str, where: str, prefix: str = "") -> None:
    """The text column exists and holds strings; the columns scoring adds do not exist yet."""
    if text_column not in schema.names:
        found = ", ".join(schema.names) or "none"
        raise PipelineError(
            f"{where} has no column {text_column!r} (columns: {found}); use --text-column"
        )
    kind = schema.field(text_column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise PipelineError(f"column {text_column!r} of {where} holds {kind}, not text")
    clash = [name for name in added(prefix) if name in schema.names]
    if clash:
        raise PipelineError(
            f"{where} already has column(s) {', '.join(clash)}: name the outputs with a "
            "prefix, e.g. --prefix pred_"
        )


def output_schema(schema: pa.Schema, prefix: str = "") -> pa.Schema:
    probability, label, version = added(prefix)
    return (
        schema.append(pa.field(probability, pa.float64()))
        .append(pa.field(label, pa.string()))
        .append(pa.field(version, pa.string()))
    )


class Writer(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...


@contextmanager
def writer(path: Path, fmt: Format, schema: pa.Schema, overwrite: bool) -> Iterator[Writer]:
    """A writer into a temporary file that becomes `path` only if the block completes."""
    if path.exists() and not overwrite:
        raise PipelineError(f"output exists: {path} (use --overwrite)")
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            with pq.ParquetWriter(tmp, schema) as parquet:
                yield parquet
        elif fmt == "csv":
            with pa_csv.CSVWriter(tmp, schema) as csv:
                yield csv
        else:
            with tmp.open("wb") as handle:
                yield _JsonLines(handle)


class _JsonLines:
    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle

    def write(self, batch: pa.RecordBatch) -> None:
        frame = batch.to_pandas()
        self.handle.write(frame.to_json(orient="records", lines=True, force_ascii=False).encode())

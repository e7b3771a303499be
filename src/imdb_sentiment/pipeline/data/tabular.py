"""Labelled reviews from a table: CSV, Parquet or JSON Lines, with the columns and label values
`params.yaml` names (`data.columns`, `data.labels`). The result has the dataset's columns (id,
rating, label, movie, text; `data/validate.SCHEMA`): `id` is the row number, `rating` unknown,
`movie` the grouping column's value ("" without one).

Anything the pipeline cannot use is a `DataError` of one line that names the file, the column,
the offending value and how many rows have it: nothing is dropped silently.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imdb_sentiment.core.config import DataColumns, DataLabels
from imdb_sentiment.core.errors import DataError

TABULAR = ("csv", "parquet", "jsonl")
_SUFFIX = re.compile(r"\.(csv|parquet|pq|jsonl|ndjson)(\.gz)?$", re.IGNORECASE)
_FORMAT_OF = {"csv": "csv", "parquet": "parquet", "pq": "parquet", "jsonl": "jsonl",
              "ndjson": "jsonl"}  # fmt: skip


def detect_format(source: str, declared: str = "auto") -> str:
    """`declared` unless "auto"; else from the name: a table's suffix, or the IMDB archive."""
    if declared != "auto":
        return declared
    match = _SUFFIX.search(source.split("?")[0])
    return _FORMAT_OF[match.group(1).lower()] if match else "imdb"


def read_table(path: Path, fmt: str, name: str) -> pd.DataFrame:
    """The whole file as a frame; `name` says which file in errors (the source as given)."""
    try:
        if fmt == "csv":
            # Every cell as text: labels such as "1" stay "1"; an empty cell is null.
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_json(path, lines=True, dtype=False)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise DataError(f"cannot read {name} as {fmt}: {detail}") from exc


def labelled_frame(
    table: pd.DataFrame,
    columns: DataColumns,
    labels: DataLabels,
    name: str,
    drop_without_text: bool = False,
) -> pd.DataFrame:
    """The dataset's columns from a table, or a DataError naming what is wrong.
    `drop_without_text`: rows with no text are left out instead (a feedback export holds rows
    whose text was not kept); the caller counts them."""
    wanted = [columns.text, columns.label, *([columns.group] if columns.group else [])]
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        have = ", ".join(map(str, table.columns[:10]))
        raise DataError(f"{name} has no column {missing[0]!r} (columns: {have}); set data.columns")
    if table.empty:
        raise DataError(f"{name} has no rows")
    rows = np.arange(len(table))  # the id: a row's number in its file
    if drop_without_text:
        keep = ~_blank(table[columns.text]).to_numpy()
        table, rows = table[keep], rows[keep]
    text = _texts(table[columns.text], columns.text, name)
    label = _labels(table[columns.label], columns.label, labels, name)
    movie = (
        table[columns.group].astype("string").fillna("")
        if columns.group
        else pd.Series([""] * len(table), dtype="string")
    )
    return pd.DataFrame(
        {
            "id": rows.astype("int64"),
            "rating": pd.Series([None] * len(table), dtype="Int64"),
            "label": label.to_numpy(),
            "movie": movie.to_numpy(),
            "text": text.to_numpy(),
        }
    ).astype({"label": "int64", "movie": "string", "text": "string"})


def _texts(values: pd.Series, column: str, name: str) -> pd.Series:
    wrong = values.map(lambda v: v is not None and not pd.isna(v) and not isinstance(v, str))
    if wrong.any():
        first = values[wrong].iloc[0]
        raise DataError(
            f"{name}: column {column!r} must hold text; {int(wrong.sum())} row(s) do not, "
            f"e.g. row {_row(wrong)}: {first!r} ({type(first).__name__})"
        )
    empty = _blank(values)
    if empty.any():
        raise DataError(
            f"{name}: {int(empty.sum())} row(s) have an empty {column!r}, e.g. row {_row(empty)}"
        )
    return values.astype("string")


def _blank(values: pd.Series) -> pd.Series:
    return values.isna() | values.map(lambda v: isinstance(v, str) and not v.strip())


def _labels(values: pd.Series, column: str, labels: DataLabels, name: str) -> pd.Series:
    mapping = {v.lower(): 0 for v in labels.negative} | {v.lower(): 1 for v in labels.positive}
    keys = values.map(_label_key)
    mapped = keys.map(mapping)
    unknown = mapped.isna()
    if unknown.any():
        first = values[unknown].iloc[0]
        raise DataError(
            f"{name}: {int(unknown.sum())} row(s) have a {column!r} outside data.labels, e.g. "
            f"row {_row(unknown)}: {first!r} (positive: {list(labels.positive)}, negative: "
            f"{list(labels.negative)})"
        )
    return mapped.astype("int64")


def _label_key(value: Any) -> str | None:
    """A label value as the text data.labels lists it: 1, 1.0 and "1" are all "1"."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().lower()


def _row(mask: pd.Series) -> int:
    """1-based data row (the CSV header not counted) of the first flagged value."""
    return int(mask.to_numpy().nonzero()[0][0]) + 1

"""Data validation: schema (pandera), empty texts, duplicates, class balance → a JSON report."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa

from imdb_sentiment.core.errors import DataError

SCHEMA = pa.DataFrameSchema(
    {
        "id": pa.Column("int64", pa.Check.ge(0)),
        # The archive's star rating; unknown (null) for tables and extra training rows.
        "rating": pa.Column("Int64", pa.Check.in_range(1, 10), nullable=True),
        "label": pa.Column("int64", pa.Check.isin([0, 1])),
        "movie": pa.Column("string"),
        "text": pa.Column(
            "string",
            pa.Check(lambda s: s.str.strip().str.len() > 0, error="empty or whitespace-only text"),
            nullable=False,
        ),
    },
    strict=True,
    coerce=False,
)


def _schema_errors(frame: pd.DataFrame, name: str) -> list[str]:
    try:
        SCHEMA.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return [
            f"{name}.{row.column}: {row.check} ({row.failure_case!r})"
            for row in cases.head(5).itertuples()
        ]
    return []


def split_report(frame: pd.DataFrame, min_text_chars: int) -> dict[str, Any]:
    lengths = frame.text.str.len()
    positive = float(frame.label.mean()) if len(frame) else 0.0
    return {
        "rows": len(frame),
        "positive_share": round(positive, 6),
        "duplicate_texts": int(frame.text.duplicated().sum()),
        "empty_texts": int((frame.text.str.strip().str.len() == 0).sum()),
        "short_texts": int((lengths < min_text_chars).sum()),
        "chars_median": float(lengths.median()) if len(frame) else 0.0,
        "chars_max": int(lengths.max()) if len(frame) else 0,
    }


def validate_frames(
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    max_duplicate_fraction: float,
    max_class_imbalance: float,
    min_text_chars: int,
) -> dict[str, Any]:
    """Return the validation report, or raise DataError listing every failed check."""
    problems = _schema_errors(train, "train") + _schema_errors(test, "test")
    if problems:
        raise DataError("schema check failed: " + "; ".join(problems))
    report: dict[str, Any] = {
        "train": split_report(train, min_text_chars),
        "test": split_report(test, min_text_chars),
    }
    overlap = int(test.text.isin(set(train.text)).sum())
    report["cross_split_duplicates"] = overlap
    for name in ("train", "test"):
        part = report[name]
        if part["empty_texts"]:
            problems.append(f"{name} has {part['empty_texts']} empty texts")
        if part["duplicate_texts"] > max_duplicate_fraction * max(part["rows"], 1):
            problems.append(f"{name} has {part['duplicate_texts']} duplicate texts")
        if abs(part["positive_share"] - 0.5) > max_class_imbalance:
            problems.append(f"{name} class balance is off: {part['positive_share']:.3f} positive")
    if overlap > max_duplicate_fraction * max(len(test), 1):
        problems.append(f"{overlap} test texts also appear in train (leakage)")
    report["passed"] = not problems
    if problems:
        raise DataError("data validation failed: " + "; ".join(problems))
    return report

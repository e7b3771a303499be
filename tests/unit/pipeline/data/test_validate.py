from __future__ import annotations

import pandas as pd
import pytest

from imdb_sentiment.core.errors import DataError
from imdb_sentiment.pipeline.data.validate import validate_frames


def frame(texts: list[str], labels: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(len(texts)),
            "rating": [8 if label else 2 for label in labels],
            "label": labels,
            "movie": [f"tt{i // 2}" for i in range(len(texts))],
            "text": texts,
        }
    ).astype(
        {"id": "int64", "rating": "int64", "label": "int64", "movie": "string", "text": "string"}
    )


def check(
    train: pd.DataFrame, test: pd.DataFrame, dup: float = 0.0, imbalance: float = 0.1
) -> dict:
    return validate_frames(
        train, test, max_duplicate_fraction=dup, max_class_imbalance=imbalance, min_text_chars=5
    )


def balanced(prefix: str, n: int = 10) -> pd.DataFrame:
    return frame([f"{prefix} review number {i}" for i in range(n)], [i % 2 for i in range(n)])


def test_clean_data_passes_with_a_full_report() -> None:
    report = check(balanced("train"), balanced("test"))
    assert report["passed"] is True
    assert report["train"]["rows"] == 10
    assert report["train"]["positive_share"] == 0.5
    assert report["cross_split_duplicates"] == 0


def test_duplicates_within_a_split_are_counted_and_fail() -> None:
    train = balanced("train")
    train.loc[1, "text"] = train.loc[0, "text"]
    with pytest.raises(DataError, match="train has 1 duplicate texts"):
        check(train, balanced("test"))
    report = check(train, balanced("test"), dup=0.2)
    assert report["train"]["duplicate_texts"] == 1


def test_leakage_across_splits_fails() -> None:
    with pytest.raises(DataError, match="also appear in train"):
        check(balanced("same"), balanced("same"))


def test_whitespace_only_text_fails_the_schema() -> None:
    train = balanced("train")
    train.loc[3, "text"] = "   "
    with pytest.raises(DataError, match="empty or whitespace-only"):
        check(train, balanced("test"))


def test_class_imbalance_fails() -> None:
    skewed = frame([f"review {i}" for i in range(10)], [1] * 8 + [0] * 2)
    with pytest.raises(DataError, match="class balance"):
        check(skewed, balanced("test"))


def test_wrong_dtype_or_extra_column_fails() -> None:
    train = balanced("train").assign(extra=1)
    with pytest.raises(DataError, match="schema check failed"):
        check(train, balanced("test"))

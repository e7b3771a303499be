"""Ingest: source → verified train/test DataFrames → data/raw/{train,test}.parquet."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from imdb_sentiment.data.archive import Review
from imdb_sentiment.errors import DataError

COLUMNS = ["id", "rating", "label", "text"]
POSITIVE_MIN_RATING = 7
NEGATIVE_MAX_RATING = 4


def reviews_frame(reviews: Iterable[Review]) -> pd.DataFrame:
    """Collect reviews into one frame with a `split` column, rejecting empty files early."""
    rows = []
    for review in reviews:
        if not review.text.strip():
            raise DataError(f"empty review file: {review.name}")
        rows.append((review.split, review.id, review.rating, review.label, review.text))
    if not rows:
        raise DataError(
            "no reviews found: expected aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt"
        )
    frame = pd.DataFrame(rows, columns=["split", *COLUMNS])
    return frame.astype({"id": "int64", "rating": "int64", "label": "int64", "text": "string"})


def check_layout(frame: pd.DataFrame, expected_per_label: int | None) -> None:
    """Verify counts per split/label and that each label agrees with its star rating."""
    if expected_per_label is not None:
        counts = frame.groupby(["split", "label"]).size()
        for split in ("train", "test"):
            for label, name in ((1, "pos"), (0, "neg")):
                found = int(counts.get((split, label), 0))
                if found != expected_per_label:
                    raise DataError(
                        f"wrong count in {split}/{name}: expected {expected_per_label} reviews, "
                        f"found {found}"
                    )
    bad = frame[
        ((frame.label == 1) & (frame.rating < POSITIVE_MIN_RATING))
        | ((frame.label == 0) & (frame.rating > NEGATIVE_MAX_RATING))
    ]
    if len(bad):
        first = bad.iloc[0]
        folder = "pos" if first.label == 1 else "neg"
        raise DataError(
            f"{len(bad)} review(s) have a rating that contradicts their label, e.g. "
            f"{first.split}/{folder}/{first.id}_{first.rating}.txt (pos needs >= 7, neg <= 4)"
        )


def split_frame(
    frame: pd.DataFrame, split: str, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Official split (disjoint movies, no leakage) or a seeded stratified random split."""
    if split == "official":
        train = frame[frame.split == "train"]
        test = frame[frame.split == "test"]
    else:
        train, test = train_test_split(
            frame, test_size=test_size, random_state=seed, stratify=frame.label
        )
    ordered = [
        t.sort_values(["label", "id"]).reset_index(drop=True)[COLUMNS] for t in (train, test)
    ]
    return ordered[0], ordered[1]


def ingest(
    reviews: Iterable[Review],
    *,
    expected_per_label: int | None,
    split: str = "official",
    test_size: float = 0.2,
    seed: int = 42,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = reviews_frame(reviews)
    check_layout(frame, expected_per_label)
    return split_frame(frame, split, test_size, seed)


def write_frames(frames: Mapping[str, pd.DataFrame], out_dir: Path) -> None:
    """Write every frame or none: each goes to a temp file first, renamed only when all are done."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        for name, frame in frames.items():
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".parquet")
            os.close(fd)
            staged.append((Path(tmp), out_dir / f"{name}.parquet"))
            frame.to_parquet(tmp, index=False)
        for tmp_path, final in staged:
            tmp_path.replace(final)
    finally:
        for tmp_path, _ in staged:
            tmp_path.unlink(missing_ok=True)

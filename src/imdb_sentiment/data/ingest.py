"""Ingest: source → verified train/test DataFrames → data/raw/{train,test}.parquet."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from imdb_sentiment.atomic import staged_paths
from imdb_sentiment.data.archive import MovieUrls, Review
from imdb_sentiment.errors import DataError

# movie: the IMDb title id (tt…) the review is about, "" where the source has no urls_*.txt.
# Reviews of one movie share names and vocabulary, so validation splits group by it.
COLUMNS = ["id", "rating", "label", "movie", "text"]
_TITLE = re.compile(r"tt\d+")
POSITIVE_MIN_RATING = 7
NEGATIVE_MAX_RATING = 4


def reviews_frame(members: Iterable[Review | MovieUrls]) -> pd.DataFrame:
    """Collect reviews into one frame with a `split` column, rejecting empty files early."""
    rows, movies = [], {}
    for member in members:
        if isinstance(member, MovieUrls):
            movies[member.split, member.label] = [_movie(url) for url in member.urls]
            continue
        if not member.text.strip():
            raise DataError(f"empty review file: {member.name}")
        rows.append((member.split, member.id, member.rating, member.label, "", member.text))
    if not rows:
        raise DataError(
            "no reviews found: expected aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt"
        )
    frame = pd.DataFrame(rows, columns=["split", *COLUMNS])
    frame["movie"] = [
        _lookup(movies.get((split, label)), i)
        for split, label, i in zip(frame.split, frame.label, frame.id, strict=True)
    ]
    types = {"id": "int64", "rating": "int64", "label": "int64", "movie": "string"}
    return frame.astype({**types, "text": "string"})


def _movie(url: str) -> str:
    title = _TITLE.search(url)
    return title.group(0) if title else url


def _lookup(movies: list[str] | None, review_id: int) -> str:
    return movies[review_id] if movies is not None and review_id < len(movies) else ""


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
    reviews: Iterable[Review | MovieUrls],
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
    targets = [out_dir / f"{name}.parquet" for name in frames]
    with staged_paths(targets) as tmps:
        for tmp, frame in zip(tmps, frames.values(), strict=True):
            frame.to_parquet(tmp, index=False)

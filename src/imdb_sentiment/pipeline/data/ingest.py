"""Ingest: source → verified train/test DataFrames (+ extra training rows) →
data/raw/{train,test}.parquet, and what came from where (reports/ingest.json)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from imdb_sentiment.core.atomic import staged_paths
from imdb_sentiment.core.config import DataColumns, DataLabels, DataParams
from imdb_sentiment.core.errors import DataError
from imdb_sentiment.core.text import clean_text
from imdb_sentiment.pipeline.data.archive import MovieUrls, Review, iter_reviews
from imdb_sentiment.pipeline.data.source import resolve_source, sha256_of
from imdb_sentiment.pipeline.data.tabular import detect_format, labelled_frame, read_table

# movie: the IMDb title id (tt…) the review is about, "" where the source has no urls_*.txt.
# Reviews of one movie share names and vocabulary, so validation splits group by it.
COLUMNS = ["id", "rating", "label", "movie", "text"]
_TITLE = re.compile(r"tt\d+")
# Labels as the dataset (and a feedback export) stores them.
DATASET_LABELS = DataLabels(positive=("1",), negative=("0",))
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
    types = {"id": "int64", "rating": "Int64", "label": "int64", "movie": "string"}
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
    """The archive's official split (disjoint movies, no leakage), a seeded stratified random
    split, or a seeded split in which no group (`movie`) is on both sides."""
    if split == "official":
        if "split" not in frame.columns:
            raise DataError(
                "data.split: official is the IMDB archive's own split; for a table set "
                "data.split to random or group"
            )
        train = frame[frame.split == "train"]
        test = frame[frame.split == "test"]
    elif split == "group":
        if (frame.movie == "").any():
            raise DataError(
                f"split: group needs a group for every row; {int((frame.movie == '').sum())} "
                "row(s) have none"
            )
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        train_idx, test_idx = next(splitter.split(frame, groups=frame.movie))
        train, test = frame.iloc[train_idx], frame.iloc[test_idx]
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


ROW_GROUP = 10_000


def write_frames(frames: Mapping[str, pd.DataFrame], out_dir: Path) -> None:
    """Write every frame or none: each goes to a temp file first, renamed only when all are done."""
    targets = [out_dir / f"{name}.parquet" for name in frames]
    with staged_paths(targets) as tmps:
        for tmp, frame in zip(tmps, frames.values(), strict=True):
            # Row groups of bounded size: featurize reads the file a chunk at a time.
            frame.to_parquet(tmp, index=False, row_group_size=ROW_GROUP)


def drop_repeated(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """A table without its repeated reviews (the same text once `clean_text` normalises it):
    the first stays. Copies would land on both sides of a random split (leakage: the 50k-review
    CSV holds ~400) and weigh twice in training."""
    repeated = frame.text.map(clean_text).duplicated().to_numpy()
    return frame[~repeated].reset_index(drop=True), int(repeated.sum())


def add_extra_train(
    train: pd.DataFrame, test: pd.DataFrame, extras: Mapping[str, pd.DataFrame]
) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """`train` with the rows of each extra frame that may train a model (docs/model.md,
    "Feedback as data"), each frame one group of its own (`extra:<name>`), and per frame how
    many were dropped and why: a text (as `clean_text` normalises it) of the test split would be
    tested on what trained it; one already in train (or an earlier frame), or twice in a frame,
    would only weigh it twice. The splits are normalised once, whatever the number of frames."""
    test_keys = set(test.text.map(clean_text))
    train_keys = set(train.text.map(clean_text))
    parts, dropped = [train], {}
    for name, extra in extras.items():
        cleaned = extra.text.map(clean_text)
        in_test = cleaned.isin(test_keys).to_numpy()
        in_train = cleaned.isin(train_keys).to_numpy() & ~in_test
        repeated = cleaned.duplicated().to_numpy() & ~in_test & ~in_train
        keep = ~(in_test | in_train | repeated)
        parts.append(
            extra[keep].assign(movie=f"extra:{name}")[COLUMNS].astype(train.dtypes.to_dict())
        )
        train_keys.update(cleaned[keep])
        dropped[name] = {
            "in_test": int(in_test.sum()),
            "in_train": int(in_train.sum()),
            "repeated": int(repeated.sum()),
        }
    return pd.concat(parts, ignore_index=True), dropped


def load_sources(
    p: DataParams, show_progress: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The `ingest` stage: (train, test, provenance) from `data.source` and `data.extra_train`.
    Provenance names each source with its checksum and row counts, and what was dropped."""
    fmt = detect_format(p.source, p.format)
    path = resolve_source(p.source, Path(p.cache_dir), p.sha256)
    if fmt == "imdb":
        train, test = ingest(
            iter_reviews(path, show_progress=show_progress),
            expected_per_label=p.expected_per_label,
            split=p.split,
            test_size=p.test_size,
            seed=p.seed,
        )
    else:
        frame = labelled_frame(read_table(path, fmt, p.source), p.columns, p.labels, p.source)
        frame, repeated = drop_repeated(frame)
        train, test = split_frame(frame, p.split, p.test_size, p.seed)
    main = {"uri": p.source, "role": "source", "format": fmt, "sha256": _checksum(path),
            "rows": len(train) + len(test), "train": len(train), "test": len(test)}  # fmt: skip
    if fmt != "imdb":
        main.update(rows=len(train) + len(test) + repeated, dropped={"repeated": repeated})
    read = {name: _extra_source(name, p) for name in p.extra_train}
    frames = {name: frame for name, (frame, _) in read.items()}
    train, dropped = add_extra_train(train, test, frames)
    sources = [main]
    for name, (frame, record) in read.items():
        used = len(frame) - sum(dropped[name].values())
        sources.append({**record, "used": used, "dropped": dropped[name]})
    return train, test, {"sources": sources, "train": len(train), "test": len(test)}


def _extra_source(path_text: str, p: DataParams) -> tuple[pd.DataFrame, dict[str, Any]]:
    path = Path(path_text)
    fmt = detect_format(path_text)
    if fmt == "imdb":
        raise DataError(f"data.extra_train: {path_text} is not a table (csv, parquet, jsonl)")
    if not path.is_file():
        raise DataError(f"data.extra_train: {path_text} not found (`dvc pull`?)")
    table = read_table(path, fmt, path_text)
    # A feedback export (`imdb-sentiment feedback export`) is in the dataset's own schema.
    own = {"text", "label"} <= set(table.columns) and p.columns.text not in table.columns
    columns = (
        DataColumns(text="text", label="label")
        if own
        else p.columns.model_copy(update={"group": None})
    )
    labels = DATASET_LABELS if own else p.labels
    frame = labelled_frame(table, columns, labels, path_text, drop_without_text=True)
    record = {"uri": path_text, "role": "extra_train", "format": fmt, "sha256": _checksum(path),
              "rows": len(table), "no_text": len(table) - len(frame)}  # fmt: skip
    return frame, record


def _checksum(path: Path) -> str:
    return sha256_of(path) if path.is_file() else "directory"

"""Test data builders: small archives in the official aclImdb layout, tiny models."""

from __future__ import annotations

import io
import random
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from imdb_sentiment.core.config import FeatureParams
from imdb_sentiment.core.text import CleanOptions
from imdb_sentiment.model.classifier import NBLogisticRegression
from imdb_sentiment.model.features import build_featurizer
from imdb_sentiment.presets import load_preset

T = TypeVar("T")

POSITIVE = ["great", "wonderful", "loved", "excellent", "brilliant", "superb", "moving", "best"]
NEGATIVE = ["awful", "boring", "waste", "terrible", "worst", "dull", "hated", "poor"]
NEUTRAL = ["movie", "film", "plot", "actor", "scene", "story", "director", "camera", "music"]


def review_text(label: int, rng: random.Random, words: int = 30) -> str:
    strong = POSITIVE if label else NEGATIVE
    body = [rng.choice(NEUTRAL) for _ in range(words)]
    for _ in range(6):
        body.insert(rng.randrange(len(body)), rng.choice(strong))
    return "This " + " ".join(body) + ".<br /><br />Really " + rng.choice(strong) + "!"


def review_files(per_label: int, seed: int = 0) -> dict[str, bytes]:
    """{member name: content} for train/test x pos/neg, with consistent ratings."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for split in ("train", "test"):
        for label, folder in ((1, "pos"), (0, "neg")):
            for i in range(per_label):
                rating = rng.choice([7, 8, 9, 10]) if label else rng.choice([1, 2, 3, 4])
                name = f"aclImdb/{split}/{folder}/{i}_{rating}.txt"
                files[name] = review_text(label, rng).encode()
            # Like the real urls_*.txt: line i is the movie of review i; a few reviews per
            # movie, movies shared by both labels, train and test movies disjoint.
            first = 0 if split == "train" else 1000
            urls = [f"http://www.imdb.com/title/tt{first + i // 3:07d}/" for i in range(per_label)]
            files[f"aclImdb/{split}/urls_{folder}.txt"] = "\n".join(urls).encode() + b"\n"
    files["aclImdb/train/unsup/0_0.txt"] = b"unlabelled review"
    files["aclImdb/README"] = b"test archive"
    return files


def write_archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def write_directory(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root / "aclImdb"


# The recommended cleaning: punctuation marks and "8/10" as tokens of their own.
PUNCTUATION_TOKENS = CleanOptions()
# The seed project's cleaning (stop words removed, lemmas, no digits or punctuation), read from
# its preset: the tiny models of the unit tests use it.
SEED_CLEANING = CleanOptions(**load_preset("seed")["clean"])


def tiny_texts(n: int = 60, seed: int = 1) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    labels = [i % 2 for i in range(n)]
    return [review_text(label, rng) for label in labels], labels


def tiny_model(
    nb: bool = True, seed: int = 1, clean: CleanOptions | None = None, flipped: bool = False
) -> Pipeline:
    """A real, small model pipeline (cleaning → TF-IDF → NB-LR) trained on generated reviews;
    `flipped`: on their labels inverted (a model that is reliably wrong)."""
    texts, labels = tiny_texts(seed=seed)
    labels = [1 - label for label in labels] if flipped else labels
    featurizer = build_featurizer(
        clean or SEED_CLEANING, FeatureParams(max_features=None, ngram_range=(1, 2))
    )
    x = featurizer.fit_transform(texts)
    clf = NBLogisticRegression(C=10.0, nb=nb, nb_normalize=nb).fit(x, np.array(labels))
    return Pipeline([*featurizer.steps, ("clf", clf)])


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """`frame` as the file its suffix names: .csv, .parquet, else JSON Lines."""
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def files_run(call: Callable[[], T]) -> tuple[T, set[str]]:
    """`call()`'s result and the package's files whose code ran in it (this thread), relative
    to the package: a request's route, traced with `sys.setprofile`."""
    import sys
    from types import FrameType

    import imdb_sentiment

    package = Path(imdb_sentiment.__file__).parent
    ran: set[str] = set()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        path = Path(frame.f_code.co_filename)
        if event == "call" and path.is_relative_to(package):
            ran.add(str(path.relative_to(package)))

    sys.setprofile(profile)
    try:
        result = call()
    finally:
        sys.setprofile(None)
    return result, ran

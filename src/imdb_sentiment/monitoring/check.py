"""`imdb-sentiment drift` as a function: resolve the model, build the reference and current
signals, compare, write the report.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import pandas as pd

from imdb_sentiment.core.config import DriftParams
from imdb_sentiment.core.errors import DataError
from imdb_sentiment.core.model_settings import ModelSettings
from imdb_sentiment.monitoring.drift import (
    DriftResult,
    compare,
    is_prediction_log,
    log_files,
    read_prediction_log,
    read_reviews,
    records_frame,
    score_texts,
)
from imdb_sentiment.monitoring.report import write_report
from imdb_sentiment.runtime.resolve import resolve_model
from imdb_sentiment.runtime.scorer import FastScorer
from imdb_sentiment.runtime.scorer_files import load_scorer
from imdb_sentiment.store.database import open_store

T = TypeVar("T")


@dataclass(frozen=True)
class DriftRequest:
    current: list[Path]
    params: DriftParams
    model_uri: str
    data_dir: Path  # where {train,test}.parquet are (the reference split)
    out_dir: Path
    text_column: str = "text"
    since: datetime | None = None
    until: datetime | None = None
    model_version: str | None = None  # only this version's records (the store)
    store_url: str | None = None  # no CURRENT files: the prediction store's records


def check_drift(request: DriftRequest, settings: ModelSettings) -> tuple[DriftResult, Path, Path]:
    resolved = resolve_model(request.model_uri, settings)
    scorer = load_scorer(resolved.scorer_dir)
    p = request.params
    split = request.data_dir / f"{p.reference}.parquet"
    texts = read_reviews(split, "text")
    if len(texts) > p.reference_rows:
        texts = random.Random(p.seed).sample(texts, p.reference_rows)
    reference = score_texts(scorer, texts)
    current, context = _current(request, scorer)
    context |= {"model": resolved.describe(), "reference": f"{split} ({p.reference} split)"}
    result = compare(reference, current, p)
    json_path, html_path = write_report(result, reference, current, request.out_dir, context)
    return result, json_path, html_path


# Records compared at most: a uniform sample beyond it (a week at 100 predictions/s is 60M rows;
# the tests' statistics are as sharp on 200,000).
STORE_SAMPLE = 200_000


def _sample(items: Iterable[T], size: int, seed: int) -> tuple[list[T], int]:
    """A uniform sample of at most `size` items from a stream (reservoir), and the count."""
    rng = random.Random(seed)
    kept: list[T] = []
    seen = 0
    for seen, item in enumerate(items, start=1):
        if len(kept) < size:
            kept.append(item)
        else:
            slot = rng.randrange(seen)
            if slot < size:
                kept[slot] = item
    return kept, seen


def _from_store(request: DriftRequest) -> tuple[pd.DataFrame, dict[str, str]]:
    assert request.store_url is not None
    since = request.since.timestamp() if request.since else None
    until = request.until.timestamp() if request.until else None
    stored = open_store(request.store_url).records(since, until, request.model_version)
    records, seen = _sample(stored, STORE_SAMPLE, request.params.seed)
    frame = records_frame(records)
    versions = sorted({str(v) for v in frame["model_version"].dropna()})
    context = {
        "prediction store": f"{seen} records in the window, {len(frame)} compared",
        "stored model versions": ", ".join(versions) or "none",
    }
    if request.since is not None:
        context["since"] = request.since.isoformat()
    if request.until is not None:
        context["until"] = request.until.isoformat()
    return frame.drop(columns="model_version"), context


def _current(request: DriftRequest, scorer: FastScorer) -> tuple[pd.DataFrame, dict[str, str]]:
    if not request.current:
        return _from_store(request)
    frames, context = [], {}
    logs = [f for path in request.current if is_prediction_log(path) for f in log_files(path)]
    if logs:
        frame, malformed = read_prediction_log(logs, request.since)
        versions = sorted({str(v) for v in frame["model_version"].dropna()})
        context["prediction log"] = f"{len(logs)} file(s), {len(frame)} records"
        context["logged model versions"] = ", ".join(versions) or "none"
        if malformed:
            context["malformed records skipped"] = str(malformed)
        frames.append(frame.drop(columns="model_version"))
    for path in request.current:
        if not path.exists():
            raise DataError(f"no such file or directory: {path}")
        if not is_prediction_log(path):
            frames.append(score_texts(scorer, read_reviews(path, request.text_column)))
            context[f"reviews {path.name}"] = "scored with the model"
    if request.since is not None:
        context["since"] = request.since.isoformat()
    return pd.concat(frames, ignore_index=True), context

"""Feedback as data: the labelled predictions of the prediction store as a Parquet file in the
dataset's schema (`data/validate.SCHEMA`: id, rating, label, movie, text), for review and,
through the route in docs/model.md, retraining.

Columns the feedback cannot know are null: `rating` (the star rating), `movie`, and `text`
where neither the prediction log nor the request kept it (PREDICTION_LOG_TEXT). Provenance
follows in `feedback_*` columns. Written atomically: a failed export leaves no file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from imdb_sentiment.core.atomic import atomic_path
from imdb_sentiment.core.labels import LABELS
from imdb_sentiment.store.database import PredictionStore, open_store

LABEL_IDS = {label: i for i, label in enumerate(LABELS)}


def labelled_frame(
    store: PredictionStore,
    since: float | None = None,
    until: float | None = None,
    version: str | None = None,
) -> pd.DataFrame:
    rows = [
        (p.request_id, p.item, p.model_version, p.label, actual, p.text, at)
        for p, actual, at in store.labelled(since, until, version)
    ]
    frame = pd.DataFrame(
        rows,
        columns=["request_id", "item", "model_version", "predicted", "actual", "text", "at"],
    )
    return pd.DataFrame(
        {
            "id": pd.Series(range(len(frame)), dtype="int64"),
            "rating": pd.Series([None] * len(frame), dtype="Int64"),
            "label": frame["actual"].map(LABEL_IDS).astype("int64"),
            "movie": pd.Series([None] * len(frame), dtype="string"),
            "text": frame["text"].astype("string"),
            "feedback_request_id": frame["request_id"].astype("string"),
            "feedback_item": frame["item"].astype("int64"),
            "feedback_model_version": frame["model_version"].astype("string"),
            "feedback_predicted": frame["predicted"].map(LABEL_IDS).astype("int64"),
            "feedback_labelled_at": pd.to_datetime(
                [datetime.fromtimestamp(t, UTC) for t in frame["at"]], utc=True
            ),
        }
    )


def export_labels(
    url: str,
    out: Path,
    since: float | None = None,
    until: float | None = None,
    version: str | None = None,
) -> pd.DataFrame:
    """Labels given in [since, until) (UNIX seconds), optionally of one model version."""
    frame = labelled_frame(open_store(url), since, until, version)
    with atomic_path(out) as tmp:
        frame.to_parquet(tmp, index=False)
    return frame

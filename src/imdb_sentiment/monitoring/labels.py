"""Feedback as data: the labelled predictions of the feedback store as a Parquet file in the
dataset's schema (`data/validate.SCHEMA`: id, rating, label, movie, text), for review and,
through the route in docs/model.md, retraining.

Columns the feedback cannot know are null: `rating` (the star rating), `movie`, and `text`
where neither the prediction log nor the request kept it (PREDICTION_LOG_TEXT). Provenance
follows in `feedback_*` columns. Written atomically: a failed export leaves no file.

Imports: pandas, pyarrow, `atomic`, `errors`, `serving.feedback`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from imdb_sentiment.atomic import atomic_path
from imdb_sentiment.errors import DataError
from imdb_sentiment.serving.feedback import FeedbackStore

LABELS = {"negative": 0, "positive": 1}


def labelled_frame(store: FeedbackStore) -> pd.DataFrame:
    rows = list(store.labelled())
    frame = pd.DataFrame(
        rows,
        columns=["request_id", "item", "model_version", "predicted", "actual", "text", "at"],
    )
    return pd.DataFrame(
        {
            "id": pd.Series(range(len(frame)), dtype="int64"),
            "rating": pd.Series([None] * len(frame), dtype="Int64"),
            "label": frame["actual"].map(LABELS).astype("int64"),
            "movie": pd.Series([None] * len(frame), dtype="string"),
            "text": frame["text"].astype("string"),
            "feedback_request_id": frame["request_id"].astype("string"),
            "feedback_item": frame["item"].astype("int64"),
            "feedback_model_version": frame["model_version"].astype("string"),
            "feedback_predicted": frame["predicted"].map(LABELS).astype("int64"),
            "feedback_labelled_at": pd.to_datetime(
                [datetime.fromtimestamp(t, UTC) for t in frame["at"]], utc=True
            ),
        }
    )


def export_labels(db: Path, out: Path) -> pd.DataFrame:
    if not db.exists():
        raise DataError(f"no feedback database at {db} (FEEDBACK_DB)")
    frame = labelled_frame(FeedbackStore(str(db), keep_text=True))
    with atomic_path(out) as tmp:
        frame.to_parquet(tmp, index=False)
    return frame

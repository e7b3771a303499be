"""Labelled feedback: which predictions were right, stored durably in SQLite.

Every prediction is remembered (request id, item, model version, probability, label; the text
only where `PREDICTION_LOG_TEXT` allows) by a background thread (`serving.background`), so the
prediction path never waits on the database. `POST /api/v1/feedback` then looks a prediction up
by its request id (or scores a text it is given) and records the true label once.

SQLite in WAL mode with a busy timeout: several gunicorn workers (each with its own connection)
read and write the same file safely. One file per pod: feedback by request id must reach the pod
that served the prediction (docs/operations.md).

Imports: the standard library, `config`, `serving.background`.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from imdb_sentiment.config import Settings
from imdb_sentiment.serving.background import BackgroundWriter

Label = Literal["positive", "negative"]
SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    request_id TEXT NOT NULL, item INTEGER NOT NULL, created REAL NOT NULL,
    model_version TEXT, probability REAL NOT NULL, label TEXT NOT NULL, text TEXT,
    PRIMARY KEY (request_id, item)
);
CREATE INDEX IF NOT EXISTS predictions_created ON predictions (created);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT NOT NULL, item INTEGER NOT NULL, created REAL NOT NULL,
    actual TEXT NOT NULL, text_sha256 TEXT UNIQUE,
    PRIMARY KEY (request_id, item)
);
"""
# A prediction reaches the database up to the writer's linger (50 ms) plus a transaction after
# its response; feedback that races it (a script posting at once, to the other worker) waits
# this long before the id is called unknown. Short on purpose: each unknown id holds a sync
# worker this long (docs/operations.md: rate-limit the endpoint at the ingress).
LOOKUP_PATIENCE_S = 0.2
_SETUP_LOCK = threading.Lock()


class UnknownPredictionError(LookupError):
    pass


class DuplicateFeedbackError(ValueError):
    pass


@dataclass(frozen=True)
class Remembered:
    request_id: str
    item: int
    model_version: str | None
    probability: float
    label: Label
    text: str | None = None


@dataclass(frozen=True)
class Labelled:
    prediction: Remembered
    actual: Label

    @property
    def correct(self) -> bool:
        return self.prediction.label == self.actual

    @property
    def outcome(self) -> str:
        """tp / tn / fp / fn, positive being the positive class."""
        hit = "t" if self.correct else "f"
        return hit + ("p" if self.prediction.label == "positive" else "n")


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class _SqliteSink:
    """The writer thread's end: everything queued so far in one transaction."""

    PRUNE_EVERY = 100_000

    def __init__(self, store: FeedbackStore) -> None:
        self.store = store
        self.written = 0

    def write(self, items: list[Remembered]) -> None:
        now = time.time()
        rows = [
            (p.request_id, p.item, now, p.model_version, p.probability, p.label, p.text)
            for p in items
        ]
        db = self.store.connect()
        db.execute("BEGIN")
        try:
            db.executemany("INSERT OR IGNORE INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        before, self.written = self.written, self.written + len(rows)
        if before // self.PRUNE_EVERY != self.written // self.PRUNE_EVERY:
            self.store.prune()

    def close(self) -> None:
        pass


class FeedbackStore:
    def __init__(self, path: str, keep_text: bool, window_hours: float = 168.0) -> None:
        self.path = Path(path)
        self.keep_text = keep_text
        self.window_s = window_hours * 3600
        self._local = threading.local()
        self._writer = BackgroundWriter(lambda: _SqliteSink(self), "feedback")

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedbackStore:
        # Texts are kept where the prediction log may keep them: one privacy switch.
        return cls(
            settings.feedback_db, settings.prediction_log_text, settings.feedback_window_hours
        )

    # --- connections: one per thread and process ----------------------------------------------
    def connect(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            db = self._open()
            self._local.db, self._local.pid = db, os.getpid()
        return db

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Switching to WAL takes an exclusive lock that the busy timeout does not wait for:
        # connections opening at once (threads, freshly forked workers) retry instead.
        with _SETUP_LOCK:
            for attempt in range(50):
                db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=NORMAL")
                    db.executescript(SCHEMA)
                    return db
                except sqlite3.OperationalError:
                    db.close()
                    if attempt == 49:
                        raise
                    time.sleep(0.02)
        raise AssertionError("unreachable")

    # --- the prediction path: queue only ------------------------------------------------------
    def remember(self, prediction: Remembered) -> None:
        if not self.keep_text and prediction.text is not None:
            prediction = replace(prediction, text=None)
        self._writer.put(prediction)

    def close(self) -> None:
        self._writer.close()

    # --- the feedback path ----------------------------------------------------------------------
    def lookup(self, request_id: str, item: int) -> Remembered:
        deadline = time.monotonic() + LOOKUP_PATIENCE_S
        while True:
            row = (
                self.connect()
                .execute(
                    "SELECT model_version, probability, label, text FROM predictions "
                    "WHERE request_id = ? AND item = ?",
                    (request_id, item),
                )
                .fetchone()
            )
            if row is not None:
                return Remembered(request_id, item, row[0], row[1], row[2], row[3])
            if time.monotonic() > deadline:
                raise UnknownPredictionError(request_id)
            time.sleep(0.02)

    def label(self, prediction: Remembered, actual: Label, by_text: bool = False) -> Labelled:
        """Record the true label of a prediction, once. With `by_text`, the prediction was made
        for this feedback request and is stored with it (a text is labelled once)."""
        digest = text_digest(prediction.text) if by_text and prediction.text is not None else None
        db = self.connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            if by_text:
                text = prediction.text if self.keep_text else None
                row = (
                    prediction.request_id,
                    prediction.item,
                    time.time(),
                    prediction.model_version,
                    prediction.probability,
                    prediction.label,
                    text,
                )
                db.execute("INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            db.execute(
                "INSERT INTO feedback VALUES (?, ?, ?, ?, ?)",
                (prediction.request_id, prediction.item, time.time(), actual, digest),
            )
            db.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            db.execute("ROLLBACK")
            raise DuplicateFeedbackError(prediction.request_id) from exc
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return Labelled(prediction, actual)

    def prune(self) -> int:
        """Forget unlabelled predictions older than the feedback window."""
        cursor = self.connect().execute(
            "DELETE FROM predictions WHERE created < ? AND NOT EXISTS (SELECT 1 FROM feedback f "
            "WHERE f.request_id = predictions.request_id AND f.item = predictions.item)",
            (time.time() - self.window_s,),
        )
        return cursor.rowcount

    def labelled(self) -> Iterator[tuple[str, int, str | None, str, str, str | None, float]]:
        """(request_id, item, model_version, predicted, actual, text, labelled at) per label."""
        yield from self.connect().execute(
            "SELECT f.request_id, f.item, p.model_version, p.label, f.actual, p.text, f.created "
            "FROM feedback f JOIN predictions p USING (request_id, item) ORDER BY f.created"
        )

"""The prediction log: a sampled `PredictionRecord` per prediction, written off the request path
(`background`) to stdout among the service's other JSON lines, or to rotated JSONL files,
one per process so that workers never interleave. Nothing queued is lost on a graceful shutdown.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from imdb_sentiment.core.background import BackgroundWriter
from imdb_sentiment.serving.service_settings import Settings
from imdb_sentiment.store.records import PredictionRecord


class _RecordFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record.msg, ensure_ascii=False)  # msg is the record's JSON body


class _HandlerSink:
    """Hands each record to a logging handler: stdout, or rotated files (RotatingFileHandler
    does the rotation)."""

    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler

    def write(self, items: list[dict[str, object]]) -> None:
        for body in items:
            self.handler.handle(
                logging.LogRecord("predictions", logging.INFO, "", 0, body, None, None)
            )

    def close(self) -> None:
        self.handler.close()


class PredictionLog:
    """Samples predictions at `rate` and writes them from a background thread."""

    def __init__(self, settings: Settings, seed: int | None = None) -> None:
        self.rate = settings.service.prediction_log_rate
        self.keep_text = settings.service.prediction_log_text
        self._random = random.Random(seed)
        self._directory = settings.service.prediction_log_dir
        self._max_bytes = settings.service.prediction_log_max_bytes
        self._backups = settings.service.prediction_log_backups
        self._writer = BackgroundWriter(lambda: _HandlerSink(self._open_handler()), "predictions")

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def sampled(self) -> bool:
        return self.rate >= 1 or (self.rate > 0 and self._random.random() < self.rate)

    def record(self, record: PredictionRecord) -> None:
        """Queue one record (the caller already drew the sample); never blocks on I/O."""
        body = record.as_json()
        if not self.keep_text:
            body.pop("text", None)
        self._writer.put(body)

    def _open_handler(self) -> logging.Handler:
        handler: logging.Handler
        if self._directory is None:
            handler = logging.StreamHandler(sys.stdout)
        else:
            directory = Path(self._directory)
            directory.mkdir(parents=True, exist_ok=True)
            handler = RotatingFileHandler(
                directory / f"predictions-{os.getpid()}.jsonl",
                maxBytes=self._max_bytes,
                backupCount=self._backups,
                encoding="utf-8",
            )
        handler.setFormatter(_RecordFormatter())
        return handler

    def close(self) -> None:
        """Write everything queued, then stop the writer thread. Idempotent."""
        self._writer.close()

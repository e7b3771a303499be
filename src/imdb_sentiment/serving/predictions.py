"""The prediction log: a sampled `PredictionRecord` per prediction, written off the request path.

A request only draws the sample and puts a small record on an in-memory queue (a few
microseconds); a background thread (`logging.handlers.QueueListener`) serialises and writes.
Records go to stdout among the service's other JSON lines, or to rotated JSONL files, one per
process so that workers never interleave. `close` drains the queue: gunicorn calls it when a
worker exits (`gunicorn.conf.worker_exit`), and it is registered with `atexit` for other
servers, so a graceful shutdown loses nothing.

Imports: the standard library, `config` and `monitoring.records`.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import random
import sys
import threading
from logging.handlers import QueueListener, RotatingFileHandler
from pathlib import Path

from imdb_sentiment.config import Settings
from imdb_sentiment.monitoring.records import PredictionRecord

log = logging.getLogger(__name__)


class _RecordFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record.msg, ensure_ascii=False)  # msg is the record's JSON body


class PredictionLog:
    """Samples predictions at `rate` and writes them from a background thread."""

    def __init__(self, settings: Settings, seed: int | None = None) -> None:
        self.rate = settings.prediction_log_rate
        self.keep_text = settings.prediction_log_text
        self._random = random.Random(seed)
        self._queue: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._listener: QueueListener | None = None
        self._handler: logging.Handler | None = None
        self._directory = settings.prediction_log_dir
        self._max_bytes = settings.prediction_log_max_bytes
        self._backups = settings.prediction_log_backups
        self._pid = 0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def sampled(self) -> bool:
        return self.rate >= 1 or (self.rate > 0 and self._random.random() < self.rate)

    def record(self, record: PredictionRecord) -> None:
        """Queue one record (the caller already drew the sample); never blocks on I/O."""
        self._start()
        body = record.as_json()
        if not self.keep_text:
            body.pop("text", None)
        self._queue.put(logging.LogRecord("predictions", logging.INFO, "", 0, body, None, None))

    def _start(self) -> None:
        # Lazily, in the process that records: gunicorn forks workers after the app may have
        # been built, and a thread does not survive a fork.
        if self._listener is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._listener is not None and self._pid == os.getpid():
                return
            handler = self._open_handler()
            handler.setFormatter(_RecordFormatter())
            listener = QueueListener(self._queue, handler)
            listener.start()
            self._handler, self._listener, self._pid = handler, listener, os.getpid()
            atexit.register(self.close)

    def _open_handler(self) -> logging.Handler:
        if self._directory is None:
            return logging.StreamHandler(sys.stdout)
        directory = Path(self._directory)
        directory.mkdir(parents=True, exist_ok=True)
        return RotatingFileHandler(
            directory / f"predictions-{os.getpid()}.jsonl",
            maxBytes=self._max_bytes,
            backupCount=self._backups,
            encoding="utf-8",
        )

    def close(self) -> None:
        """Write everything queued, then stop the writer thread. Idempotent."""
        with self._lock:
            listener, handler = self._listener, self._handler
            self._listener = self._handler = None
        if listener is not None and self._pid == os.getpid():
            listener.stop()  # drains the queue before returning
        if handler is not None:
            handler.close()

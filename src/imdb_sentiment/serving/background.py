"""Writing off the request path: a request puts a record on an in-memory queue (a few
microseconds); a thread of the same process (`logging.handlers.QueueListener`) hands it to a
`logging.Handler` that does the I/O. Used by the prediction log and the feedback store.

Started lazily in the process that writes (gunicorn forks workers after the app may exist, and a
thread does not survive a fork); `close` drains the queue and is idempotent. gunicorn calls it
when a worker exits (`gunicorn.conf.worker_exit`); `atexit` covers other servers.

Imports: the standard library only.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from collections.abc import Callable
from logging.handlers import QueueListener
from typing import Any


class BackgroundWriter:
    def __init__(self, open_handler: Callable[[], logging.Handler], name: str) -> None:
        self._open_handler = open_handler
        self._name = name
        self._queue: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._listener: QueueListener | None = None
        self._handler: logging.Handler | None = None
        self._pid = 0

    def put(self, body: Any) -> None:
        """Queue `body` (the handler receives it as `record.msg`); never blocks on I/O."""
        self._start()
        self._queue.put(logging.LogRecord(self._name, logging.INFO, "", 0, body, None, None))

    def _start(self) -> None:
        if self._listener is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._listener is not None and self._pid == os.getpid():
                return
            handler = self._open_handler()
            listener = QueueListener(self._queue, handler)
            listener.start()
            self._handler, self._listener, self._pid = handler, listener, os.getpid()
            atexit.register(self.close)

    def close(self) -> None:
        """Write everything queued, then stop the writer thread."""
        with self._lock:
            listener, handler = self._listener, self._handler
            self._listener = self._handler = None
        if listener is not None and self._pid == os.getpid():
            listener.stop()  # drains the queue before returning
        if handler is not None:
            handler.close()

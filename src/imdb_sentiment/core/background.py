"""Writing off the request path: a request puts an item on an in-memory queue (a few
microseconds); a thread of the same process takes everything queued within a short linger and
hands it to a sink in one call (one database transaction, one burst of log lines), so the cost
per item stays small under load. Used by the prediction log and the prediction store.

The queue can be bounded: past `max_queue` items waiting, `put` drops the item and reports it
to `on_drop` (a slow sink must cost memory only up to a limit, and what is lost is counted).

Started lazily in the process that writes (gunicorn forks workers after the app may exist, and a
thread does not survive a fork); `close` drains the queue and is idempotent. gunicorn calls it
when a worker exits (`serving.server.worker_exit`); `atexit` covers other servers.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)
_STOP = object()
MAX_BATCH = 1000


class Sink(Protocol):
    def write(self, items: list[Any]) -> None: ...

    def close(self) -> None: ...


class BackgroundWriter:
    def __init__(
        self,
        open_sink: Callable[[], Sink],
        name: str,
        linger: float = 0.05,
        max_queue: int | None = None,
        on_drop: Callable[[int, str], None] | None = None,
    ) -> None:
        self._open_sink = open_sink
        self._name = name
        self._max_queue = max_queue
        self._on_drop = on_drop
        # After the first item, wait this long for more: under load one write carries many
        # items (benchmarks/serve.py: a SQLite transaction per request cost ~17 % of
        # single-review throughput; batched, ~3 %). The sleep releases the GIL.
        self._linger = linger
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def put(self, item: Any) -> bool:
        """Queue one item for the sink; never blocks on I/O. False: dropped (queue full)."""
        if self._thread is None or self._pid != os.getpid():
            self._start()
        if self._max_queue is not None and self._queue.qsize() >= self._max_queue:
            if self._on_drop is not None:
                self._on_drop(1, "queue_full")
            return False
        self._queue.put(item)
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            sink = self._open_sink()
            thread = threading.Thread(
                target=self._run, args=(sink,), name=f"{self._name}-writer", daemon=True
            )
            thread.start()
            self._thread, self._pid = thread, os.getpid()
            atexit.register(self.close)

    def _run(self, sink: Sink) -> None:
        try:
            while True:
                batch = [self._queue.get()]
                if batch[0] is not _STOP and self._linger > 0:
                    time.sleep(self._linger)
                while batch[-1] is not _STOP and len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                items = [item for item in batch if item is not _STOP]
                if items:
                    try:
                        sink.write(items)
                    except Exception:  # a failing sink must not stop the service's writes
                        log.exception("%s writer lost %d items", self._name, len(items))
                if batch[-1] is _STOP:
                    return
        finally:
            sink.close()

    def close(self) -> None:
        """Write everything queued, then stop the writer thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and self._pid == os.getpid():
            self._queue.put(_STOP)
            thread.join(timeout=30)

"""Keeps one child process running for the gunicorn master: the registry sync's `--watch`
(`serving.model.sync`). If it dies, hot reload would stop silently; the supervisor restarts it.

Used by `gunicorn.conf.py`; standard library only (the master imports nothing heavy), and
testable on its own with any command.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Sequence


class Supervisor:
    """Start `command`, restart it whenever it exits, until `stop()`."""

    def __init__(
        self, command: Sequence[str], warn: Callable[[str], None], pause: float = 5.0
    ) -> None:
        self.command = list(command)
        self.warn = warn
        self.pause = pause  # between restarts, so a child that cannot start does not spin
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        # Held while Popen runs. Popen waits on an internal pipe until its child has exec'd; a
        # process forked in that moment (a gunicorn worker) inherits the pipe's write end, and
        # Popen then blocks until that *worker* exits, hiding the child's death for the worker's
        # lifetime (seen in CI). `start` makes this process's forks wait for the lock instead.
        self._spawning = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        os.register_at_fork(
            before=self._spawning.acquire,
            after_in_parent=self._spawning.release,
            after_in_child=self._spawning.release,
        )
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._spawning:  # stop() takes it too: no child is started after stop()
                if self._stopping.is_set():
                    return
                process = subprocess.Popen(self.command)
                self.process = process
            # Polling also notices `stop`; gunicorn's waitpid(-1) in the master may reap the
            # child first, which poll() then reports as exit code 0.
            while process.poll() is None and not self._stopping.wait(0.5):
                pass
            if self._stopping.is_set():
                return
            self.warn(f"{' '.join(self.command[-3:])} exited with {process.returncode}; restarting")
            self._stopping.wait(self.pause)

    def stop(self, timeout: float = 10.0) -> None:
        with self._spawning:
            self._stopping.set()
            process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

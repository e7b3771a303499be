"""The gunicorn master's supervisor: restarts its child when it dies, stops it on stop()."""

from __future__ import annotations

import sys
import time

from imdb_sentiment.serving.server import Supervisor


def wait_until(check: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_restarts_a_dead_child_and_stops_it() -> None:
    warnings: list[str] = []
    supervisor = Supervisor(
        [sys.executable, "-c", "import time; time.sleep(60)"], warnings.append, pause=0.1
    )
    supervisor.start()
    try:
        wait_until(lambda: supervisor.process is not None)
        first = supervisor.process
        assert first is not None
        first.kill()
        wait_until(lambda: supervisor.process is not first and supervisor.process is not None)
        second = supervisor.process
        assert second is not None and second.poll() is None
        assert len(warnings) == 1 and "restarting" in warnings[0]
    finally:
        supervisor.stop()
    assert second.poll() is not None  # stopped with the supervisor
    time.sleep(0.3)
    assert supervisor.process is second  # and nothing was started after stop()

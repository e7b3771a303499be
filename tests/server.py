"""Start the real service (gunicorn via `imdb-sentiment serve`) on loopback for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.project import bin_dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_service(
    env: dict[str, str],
    log: Path,
    ready_timeout: float = 90,
    ready_path: str = "/readyz",
    cwd: Path | None = None,
) -> Iterator[str]:
    """The service on a free port; yields its URL once `ready_path` answers 200 (use /healthz
    for a service that is up but has no model). `cwd`: the instance's own working directory."""
    port = free_port()
    full_env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "2",
        "PATH": f"{bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
        **env,
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(bin_dir() / "imdb-sentiment"), "serve"],
            env=full_env,
            stdout=out,
            stderr=out,
            cwd=cwd,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"service exited early:\n{log.read_text()}")
            try:
                if requests.get(f"{url}{ready_path}", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"service not ready in time:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

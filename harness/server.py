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

from harness.project import bin_dir


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


class Pod:
    """One instance of the service ("a pod") in a directory of its own (spool, model cache,
    metrics), on a fixed port, that a test can stop with SIGTERM, start again on the same
    directory and port, and whose workers it can kill — each by process id."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), "WORKERS": "2",
            "PATH": f"{bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
            "MODEL_CACHE_DIR": str(home / "model-cache"),
            "PROMETHEUS_MULTIPROC_DIR": str(home / "prom"),
            "PREDICTION_SPOOL_DIR": str(home / "spool"), **env,
        }  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, ready_path: str = "/readyz", timeout: float = 90) -> None:
        self.starts += 1
        log = self.home / f"service-{self.starts}.log"
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [str(bin_dir() / "imdb-sentiment"), "serve"],
                env=self.env, stdout=out, stderr=out, cwd=self.home,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited early:\n{log.read_text()}")
            try:
                if requests.get(f"{self.url}{ready_path}", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"service not ready in time:\n{log.read_text()}")
            time.sleep(0.2)

    def workers(self) -> list[int]:
        """The gunicorn workers' process ids (the master's children but the model sync)."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        found = []
        for pid in map(int, children.split()):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"gunicorn" in cmdline and b"model-sync" not in cmdline:
                found.append(pid)
        return found

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as Kubernetes stops a pod: gunicorn drains, then exits."""
        assert self.proc is not None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.home.glob("service-*.log")))

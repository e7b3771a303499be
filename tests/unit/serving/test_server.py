"""The server's process model: gunicorn's settings and hooks from the typed settings, and the
master's supervisor (restarts its child when it dies, stops it on stop())."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from imdb_sentiment.serving import server as server_module
from imdb_sentiment.serving.server import Server, Supervisor
from imdb_sentiment.serving.service_settings import load_settings


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


def test_gunicorn_options_come_from_the_typed_settings(tmp_path: Path) -> None:
    settings = load_settings(port=6123, workers=3, worker_class="sync", threads=4, timeout=17)
    options = Server(settings, str(tmp_path)).gunicorn_options()
    assert options["bind"].endswith(":6123") and options["workers"] == 3
    assert options["threads"] == 1  # THREADS is for gthread only: sync would become gthread
    assert options["timeout"] == options["graceful_timeout"] == 17
    assert options["wsgi_app"] == "imdb_sentiment.serving.http.wsgi:worker_app()"
    hooks = ("on_starting", "when_ready", "on_exit", "worker_exit", "child_exit")
    assert all(callable(options[hook]) for hook in hooks)
    gthread = load_settings(worker_class="gthread", threads=4)
    assert Server(gthread, str(tmp_path)).gunicorn_options()["threads"] == 4


def test_the_server_rewrites_no_environment_and_makes_nothing_until_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What every process needs travels as gunicorn's declared `raw_env` and as settings (the
    workers' sidecar sync: `wsgi.worker_app`), never as edits to the master's environment."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    monkeypatch.setenv("MODEL_SYNC", "inline")
    before = dict(os.environ)
    options = Server(load_settings()).gunicorn_options()
    assert dict(os.environ) == before
    assert not (tmp_path / "prom").exists()  # made by on_starting, not by reading the config
    assert options["raw_env"] == [f"PROMETHEUS_MULTIPROC_DIR={tmp_path / 'prom'}"]
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    own = Server(load_settings()).metrics_dir
    assert own.endswith(f"imdb-metrics-{os.getpid()}") and not Path(own).exists()


def test_the_master_starts_the_sync_watch_and_grpc_fronts_and_stops_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """when_ready supervises one model-sync watch and GRPC_WORKERS fronts; on_exit stops them
    (commands swapped for sleepers, so nothing real starts)."""
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setattr(server_module, "_SELF", sleeper)
    monkeypatch.setattr(server_module, "_GRPC", sleeper)
    settings = load_settings(reload_interval=5, grpc_port=8099, grpc_workers=2)
    server = Server(settings, str(tmp_path))
    log = SimpleNamespace(log=SimpleNamespace(warning=print))
    server.when_ready(log)
    try:
        assert len(server.children) == 3
        assert server.children[0].command[-2:] == ["model-sync", "--watch"]
        wait_until(lambda: all(c.process is not None for c in server.children))
    finally:
        server.on_exit(log)
    assert all(c.process is not None and c.process.poll() is not None for c in server.children)
    quiet = Server(load_settings(reload_interval=0, grpc_port=0, shadow_sample=0), str(tmp_path))
    quiet.when_ready(log)
    assert quiet.children == []


def test_on_starting_clears_stale_metrics_migrates_once_and_runs_one_bounded_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "counter_1.db").write_bytes(b"stale")
    (tmp_path / "keep.txt").write_text("not a metrics file")
    ran: list[tuple[list[str], float]] = []

    def run(cmd: list[str], check: bool, timeout: float) -> SimpleNamespace:
        ran.append((cmd, timeout))
        return SimpleNamespace(returncode=0)

    monkeypatch.setattr(server_module.subprocess, "run", run)
    Server(load_settings(timeout=30), str(tmp_path)).on_starting(object())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    # The embedded store (DATABASE_MIGRATE=auto): migrated here, by the master alone.
    assert ran == [(server_module._DB_UPGRADE, 120), ([*server_module._SELF, "model-sync"], 120)]
    ran.clear()
    Server(load_settings(timeout=30, database_migrate="off"), str(tmp_path)).on_starting(object())
    assert ran == [([*server_module._SELF, "model-sync"], 120)]  # a release step migrates


def test_the_migrate_command_migrates_the_store_once_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What on_starting runs: the store at this release's head, or non-zero when it cannot be."""
    import sqlite3

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("LOG_FORMAT", "text")
    assert server_module.main(["migrate"]) == 0
    with sqlite3.connect(tmp_path / "store.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() is not None
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'not-a-dir' / 'store.db'}")
    assert server_module.main(["migrate"]) == 1

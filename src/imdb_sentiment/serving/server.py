"""The service's process model, as gunicorn runs it (`gunicorn.conf.py` only hands gunicorn
`Server(load_settings()).gunicorn_options()`), top to bottom:

- the **master** binds the port and, before any worker boots (`on_starting`): empties the
  metrics directory, migrates the embedded store once when DATABASE_MIGRATE=auto (`python -m
  imdb_sentiment.serving.server migrate`, one process: workers never migrate), and syncs
  production's version once
  (`python -m imdb_sentiment.serving.server model-sync`), so workers start on a cached model;
- **workers** (`serving.http.wsgi:worker_app()`) follow the model cache's pointer (the sidecar
  sync, passed to them as a setting) and never import MLflow or scikit-learn; each writes out its
  prediction log and queued prediction records after its last request (`worker_exit`);
- the **model sync** (`model-sync --watch`) finds the shadowed candidate and follows the
  registry (MODEL_RELOAD_INTERVAL) in a process of its own, and the **gRPC fronts** (GRPC_PORT,
  GRPC_WORKERS processes of `serving.grpc`) serve beside the workers; the master keeps each
  alive with a `Supervisor` and stops them by process id when it exits.

In production schema migrations are a release step (`imdb-sentiment db upgrade`, with
DATABASE_MIGRATE=off on the pods): every process judges the schema it finds (`/readyz`).
The only environment the server gives its processes is PROMETHEUS_MULTIPROC_DIR, declared as
gunicorn's `raw_env` (prometheus_client reads it from there); nothing is created at import.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import Any

from imdb_sentiment.serving.logs import logging_config
from imdb_sentiment.serving.service_settings import Settings, load_settings

MODEL_SYNC = "model-sync"
FIRST_SHADOW_LOOK_S = 5.0  # a slow registry never holds the workers' start longer for it
_SELF = [sys.executable, "-m", "imdb_sentiment.serving.server"]
_GRPC = [sys.executable, "-m", "imdb_sentiment.serving.grpc"]
MIGRATE = "migrate"
_DB_UPGRADE = [*_SELF, MIGRATE]
WSGI_APP = "imdb_sentiment.serving.http.wsgi:worker_app()"

log = logging.getLogger("imdb_sentiment.serving.server")  # also when run as __main__


class Server:
    """gunicorn's settings and hooks for one service, from its typed settings."""

    def __init__(self, settings: Settings, metrics_dir: str | None = None) -> None:
        self.settings = settings
        # Prometheus' multiprocess files: the operator's directory, else one of this master's
        # (made in on_starting).
        own = os.path.join(tempfile.gettempdir(), f"imdb-metrics-{os.getpid()}")
        self.metrics_dir = metrics_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR") or own
        self.children: list[Supervisor] = []  # started once the server is ready

    def gunicorn_options(self) -> dict[str, Any]:
        s = self.settings.service
        options: dict[str, Any] = {
            "bind": f"{s.host}:{s.port}",
            "workers": s.workers,
            "worker_class": s.worker_class,
            # gunicorn silently turns "sync" into "gthread" when threads > 1.
            "threads": s.threads if s.worker_class == "gthread" else 1,
            "timeout": s.timeout,
            "graceful_timeout": s.timeout,
            "keepalive": 5,
            "wsgi_app": WSGI_APP,
            # Set by gunicorn in the master before any worker or child starts (all inherit it),
            # and before any of them imports prometheus_client.
            "raw_env": [f"PROMETHEUS_MULTIPROC_DIR={self.metrics_dir}"],
            # One JSON object per line from master, workers and the access log (serving.logs).
            "logconfig_dict": logging_config(s.log_format, s.access_log),
            "errorlog": "-",
            "loglevel": "info",
            # gunicorn 26's control socket: a process-control endpoint the container does not
            # need (its home is read-only: it would only warn).
            "control_socket_disable": True,
            # Worker heartbeat files in RAM, not on a possibly read-only or slow disk.
            "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
            "on_starting": self.on_starting,
            "when_ready": self.when_ready,
            "on_exit": self.on_exit,
            "worker_exit": worker_exit,
            "child_exit": child_exit,
        }
        if s.log_format == "json":  # text keeps gunicorn's own access line (CLF)
            options["logger_class"] = "imdb_sentiment.serving.access_log.JsonAccessLogger"
        return options

    def on_starting(self, server: Any) -> None:
        """Master, before binding: a clean metrics directory, the embedded store migrated once,
        a first model in the cache."""
        # Stale files from a previous run would be summed into today's totals.
        os.makedirs(self.metrics_dir, exist_ok=True)
        for name in os.listdir(self.metrics_dir):
            if name.endswith(".db"):
                os.remove(os.path.join(self.metrics_dir, name))
        if self.settings.store.database_url and self.settings.store.database_migrate == "auto":
            self._run(server, _DB_UPGRADE, "store migration")  # the one migrator
        # Bounded: a hung registry must not keep the server from starting (workers then serve
        # the cached model, or report not-ready).
        self._run(server, [*_SELF, MODEL_SYNC], "initial model sync")

    def _run(self, server: Any, command: list[str], what: str) -> None:
        """A step of the start in a process of its own (the master stays light), bounded; a
        failure is logged and the start goes on (workers then say what is wrong: /readyz)."""
        try:
            done = subprocess.run(command, check=False, timeout=self.first_sync_timeout)
        except subprocess.TimeoutExpired:
            server.log.warning("%s timed out", what)
            return
        if done.returncode:
            server.log.warning("%s failed (exit %d)", what, done.returncode)

    @property
    def first_sync_timeout(self) -> float:
        return max(60, 4 * self.settings.service.timeout)

    def when_ready(self, server: Any) -> None:
        """Master, workers booting: start the processes beside them."""
        warn = server.log.warning
        # The watch follows the registry (MODEL_RELOAD_INTERVAL) and finds the shadowed candidate:
        # looked up here, beside the serving workers, never before them (a slow or absent
        # registry must not delay the start).
        if self.settings.service.reload_interval > 0 or self.settings.service.shadow_sample > 0:
            self.children.append(Supervisor([*_SELF, MODEL_SYNC, "--watch"], warn))
        if self.settings.service.grpc_port:
            self.children.extend(
                Supervisor(_GRPC, warn) for _ in range(self.settings.service.grpc_workers)
            )
        for child in self.children:
            child.start()

    def on_exit(self, server: Any) -> None:
        for child in self.children:
            child.stop()


def worker_exit(server: Any, worker: Any) -> None:
    """In a worker, after its last request: write out the prediction log and the queued
    prediction records."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        from imdb_sentiment.serving.http.context import service_of

        service_of(app).close()


def child_exit(server: Any, worker: Any) -> None:
    """In the master: a dead worker's metrics stop counting as live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class Supervisor:
    """Start `command`, restart it whenever it exits, until `stop()`: the model sync's watch
    and the gRPC fronts, for the master (standard library only: the master stays light)."""

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


def model_sync(watch: bool) -> int:
    """The model sync process: follow the registry with `runtime.sync.RegistrySync` (and the
    shadowed candidate with `ShadowSync`), so MLflow and scikit-learn are loaded once per pod
    instead of once per worker; workers only follow the cache's pointer."""
    from imdb_sentiment.core.tracking import configure
    from imdb_sentiment.runtime.cache import ModelCache
    from imdb_sentiment.runtime.sync import RegistrySync, ShadowSync, quiet_http_defaults
    from imdb_sentiment.serving import logs

    settings = load_settings()
    logs.configure(settings.service.log_format)  # the same JSON lines as gunicorn and the workers
    quiet_http_defaults()
    configure(settings.model)
    cache = ModelCache(settings.model.model_cache_dir, settings.model.model_name)
    sync = RegistrySync(settings.model, cache)
    also = None  # the shadowed candidate follows the registry in the same process
    if settings.service.shadow_sample > 0:
        candidate = ShadowSync(settings.model, cache, settings.service.shadow_model_uri)
        also = functools.partial(_sync_shadow, candidate)
    if not watch:  # before the workers boot: production's version, then the candidate's if
        _sync_production(sync)  # the registry answers within a few seconds (the watch goes on)
        if also is not None:
            looking = threading.Thread(target=also, name="shadow-sync", daemon=True)
            looking.start()
            looking.join(FIRST_SHADOW_LOOK_S)
        return 0
    if also is not None:
        also()
    from imdb_sentiment.serving.metrics import Metrics

    failures = Metrics().reloads.labels(result="failure")  # summed with the workers' metrics
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if settings.service.reload_interval > 0:
        sync.watch(settings.service.reload_interval, stop, failures.inc, also)
    else:  # nothing to follow: stay, so the supervisor does not start this again
        stop.wait()
    return 0


def migrate() -> int:
    """The server's one migrator (DATABASE_MIGRATE=auto): `imdb-sentiment db upgrade`'s work,
    logged as the server's processes log (JSON lines); non-zero when the store cannot be
    migrated (the workers then report it: /readyz)."""
    from imdb_sentiment.serving import logs
    from imdb_sentiment.store.migrate import upgrade
    from imdb_sentiment.store.store_errors import StoreUnavailableError

    settings = load_settings()
    logs.configure(settings.service.log_format)
    try:
        state = upgrade(settings.store.database_url, settings.store.timeouts(migration=True))
    except (StoreUnavailableError, OSError) as exc:  # a store it cannot reach or create
        log.warning("cannot migrate the prediction store: %s", exc)
        return 1
    log.info("prediction store: %s", state.detail)
    return 0


def _sync_production(sync: Any) -> None:
    try:
        pointer = sync.sync()
        log.info("serving %s version %s", pointer.name, pointer.version)
    except Exception as exc:
        log.warning("registry sync failed, workers use the cache if any: %s", exc)


def _sync_shadow(shadow: Any) -> None:
    candidate = shadow.sync()
    reason = f" ({candidate.reason})" if candidate.reason else ""
    log.info("shadowing version %s%s", candidate.version, reason)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The service's processes beside gunicorn's.")
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser(MODEL_SYNC, help="Sync the served model from the registry.")
    sync.add_argument("--watch", action="store_true", help="keep polling (MODEL_RELOAD_INTERVAL)")
    commands.add_parser(MIGRATE, help="Migrate the prediction store (DATABASE_MIGRATE=auto).")
    args = parser.parse_args(argv)
    if args.command == MIGRATE:
        return migrate()
    return model_sync(args.watch)


if __name__ == "__main__":
    raise SystemExit(main())

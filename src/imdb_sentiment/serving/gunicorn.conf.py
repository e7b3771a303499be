"""gunicorn configuration; every value comes from the typed settings (environment).

The master starts the registry sync (serving.sync) as a separate process: once, before any
worker boots, so the model is in the cache when they start; then watching, if hot reload is on.
Workers follow the cache (MODEL_SYNC=sidecar) and never import MLflow or scikit-learn.
"""

import os
import subprocess
import sys
import tempfile
import threading

from imdb_sentiment.config import load_settings

_settings = load_settings()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = _settings.worker_class
# gunicorn silently turns "sync" into "gthread" when threads > 1: THREADS is for gthread only.
threads = _settings.threads if worker_class == "gthread" else 1
timeout = _settings.timeout
graceful_timeout = _settings.timeout
keepalive = 5
wsgi_app = "imdb_sentiment.serving.wsgi:app"
accesslog = None
errorlog = "-"
loglevel = "info"
# Worker heartbeat files in RAM, not on a possibly read-only or slow disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Prometheus multiprocess mode: must be set before any worker imports prometheus_client.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="imdb-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
os.environ["MODEL_SYNC"] = "sidecar"  # inherited by workers and the sync process
_SYNC = [sys.executable, "-m", "imdb_sentiment.serving.sync"]
_watcher: list[subprocess.Popen[bytes]] = []  # the running `sync --watch`, if any
_stopping = threading.Event()
# Held while the supervisor thread runs Popen. Popen waits on an internal pipe until its child
# has exec'd; a worker forked by the master in that moment inherits the pipe's write end, and
# Popen then blocks until that *worker* exits, so the supervisor misses its child's death for
# the worker's lifetime (seen in CI). The master's forks wait for this lock instead.
_spawning = threading.Lock()


def on_starting(server: object) -> None:
    # Stale files from a previous run would be summed into today's totals.
    os.makedirs(_metrics_dir, exist_ok=True)
    for name in os.listdir(_metrics_dir):
        if name.endswith(".db"):
            os.remove(os.path.join(_metrics_dir, name))
    # Bounded: a hung registry must not keep the server from starting (workers then serve
    # the cached model, or report not-ready).
    try:
        subprocess.run(_SYNC, check=False, timeout=max(60, 4 * _settings.timeout))
    except subprocess.TimeoutExpired:
        server.log.warning("initial model sync timed out")  # type: ignore[attr-defined]


def when_ready(server: object) -> None:
    if _settings.reload_interval > 0:
        os.register_at_fork(
            before=_spawning.acquire,
            after_in_parent=_spawning.release,
            after_in_child=_spawning.release,
        )
        threading.Thread(target=_supervise, args=(server,), name="model-sync", daemon=True).start()


def _supervise(server: object) -> None:
    """Keep one `sync --watch` running: if it dies, hot reload would stop silently."""
    while not _stopping.is_set():
        with _spawning:
            process = subprocess.Popen([*_SYNC, "--watch"])
        _watcher[:] = [process]
        # Polling also notices _stopping; the master's waitpid(-1) may reap the child first,
        # which poll() reports as exit code 0.
        while process.poll() is None and not _stopping.wait(0.5):
            pass
        if _stopping.is_set():
            return
        code = process.returncode
        server.log.warning("model sync exited with %s; restarting it", code)  # type: ignore[attr-defined]
        _stopping.wait(5)  # a pause, so a sync that cannot start does not spin


def on_exit(server: object) -> None:
    _stopping.set()
    for process in _watcher:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def child_exit(server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]

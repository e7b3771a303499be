"""gunicorn configuration; every value comes from the typed settings (environment).

The master starts the registry sync (serving.model.sync) as a separate process: once, before any
worker boots, so the model is in the cache when they start; then watching, if hot reload is on,
kept alive by `serving.model.supervisor`, as are the gRPC front's processes (serving.grpc) when
GRPC_PORT is set; both are stopped by process id when the master exits.
Workers follow the cache (MODEL_SYNC=sidecar) and never import MLflow or scikit-learn.
"""

import os
import subprocess
import sys
import tempfile

from imdb_sentiment.serving.logs import logging_config
from imdb_sentiment.serving.model.supervisor import Supervisor
from imdb_sentiment.serving.settings import load_settings

_settings = load_settings()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = _settings.worker_class
# gunicorn silently turns "sync" into "gthread" when threads > 1: THREADS is for gthread only.
threads = _settings.threads if worker_class == "gthread" else 1
timeout = _settings.timeout
graceful_timeout = _settings.timeout
keepalive = 5
wsgi_app = "imdb_sentiment.serving.http.wsgi:app"
# One JSON object per line from master, workers and the access log (serving.logs); the access
# line carries the request id from the response's X-Request-ID header.
logconfig_dict = logging_config(_settings.log_format, _settings.access_log)
if _settings.log_format == "json":  # text keeps gunicorn's own access line (CLF)
    logger_class = "imdb_sentiment.serving.logs.JsonAccessLogger"
errorlog = "-"
loglevel = "info"
# gunicorn 26's control socket (~/.gunicorn/gunicorn.ctl): unused here, and a process-control
# endpoint the container does not need (its home is read-only: it would only warn).
control_socket_disable = True
# Worker heartbeat files in RAM, not on a possibly read-only or slow disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Prometheus multiprocess mode: must be set before any worker imports prometheus_client.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="imdb-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
os.environ["MODEL_SYNC"] = "sidecar"  # inherited by workers and the sync process
_SYNC = [sys.executable, "-m", "imdb_sentiment.serving.model.sync"]
_supervisor: list[Supervisor] = []  # the `sync --watch` keeper, once the server is ready


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


_GRPC = [sys.executable, "-m", "imdb_sentiment.serving.grpc"]


def when_ready(server: object) -> None:
    warn = server.log.warning  # type: ignore[attr-defined]
    if _settings.reload_interval > 0:
        _supervisor.append(Supervisor([*_SYNC, "--watch"], warn))
    # The V2 gRPC front: processes beside the workers, on the model the sync put in the cache.
    if _settings.grpc_port:
        _supervisor.extend(Supervisor(_GRPC, warn) for _ in range(_settings.grpc_workers))
    for supervisor in _supervisor:
        supervisor.start()


def on_exit(server: object) -> None:
    for supervisor in _supervisor:
        supervisor.stop()


def worker_exit(server: object, worker: object) -> None:
    # In the worker, after its last request: write out the queued prediction records and
    # remembered predictions.
    app = getattr(worker, "wsgi", None)
    if app is not None:
        from imdb_sentiment.serving.http.context import ServiceContext

        ServiceContext.of(app).close()


def child_exit(server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]

"""The sync sidecar: under gunicorn, `python -m imdb_sentiment.serving.model.sync --watch` (started
by gunicorn.conf.py) follows the registry with `runtime.sync.RegistrySync`, so MLflow and
scikit-learn are loaded once per pod instead of once per worker; workers only follow the cache's
pointer."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from imdb_sentiment.runtime.cache import ModelCache
from imdb_sentiment.runtime.sync import RegistrySync, ShadowSync, quiet_http_defaults
from imdb_sentiment.serving.settings import load_settings

log = logging.getLogger("imdb_sentiment.serving.model.sync")  # also when run as __main__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sync the served model from the registry.")
    parser.add_argument("--watch", action="store_true", help="keep polling (MODEL_RELOAD_INTERVAL)")
    args = parser.parse_args(argv)
    settings = load_settings()
    from imdb_sentiment.serving import logs

    logs.configure(settings.log_format)  # the same JSON lines as gunicorn and the workers
    quiet_http_defaults()
    from imdb_sentiment.tracking import configure

    configure(settings)
    cache = ModelCache(settings.model_cache_dir, settings.model_name)
    sync = RegistrySync(settings, cache)
    # The shadowed candidate follows the registry in the same process, after production.
    shadow = ShadowSync(settings, cache, settings.shadow_model_uri).sync
    also = shadow if settings.shadow_sample > 0 else None
    if not args.watch:
        try:
            pointer = sync.sync()
            log.info("serving %s version %s", pointer.name, pointer.version)
        except Exception as exc:
            log.warning("registry sync failed, workers use the cache if any: %s", exc)
        if also is not None:
            candidate = also()
            log.info("shadowing version %s%s", candidate.version,
                     f" ({candidate.reason})" if candidate.reason else "")  # fmt: skip
        return 0
    from imdb_sentiment.serving.metrics import Metrics

    failures = Metrics().reloads.labels(result="failure")  # summed with the workers' metrics
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sync.watch(settings.reload_interval, stop, failures.inc, also)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

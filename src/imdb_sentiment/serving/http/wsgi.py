"""WSGI entry point for gunicorn's workers: `imdb_sentiment.serving.http.wsgi:worker_app()`
(gunicorn calls the factory in each worker; `serving.server.Server` names it).

gunicorn has already configured logging (`logconfig_dict` in gunicorn.conf.py); other WSGI
servers get the same JSON lines from `serving.logs.configure`.
"""

import logging

from flask import Flask

from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.logs import configure
from imdb_sentiment.serving.service_settings import load_settings


def worker_app() -> Flask:
    """A worker's app: its model from the cache the server's sync process fills (the sidecar
    sync), its store migrated by the master already (workers never migrate)."""
    settings = load_settings(model_sync="sidecar")
    if not logging.getLogger().handlers:
        configure(settings.service.log_format)
    return create_app(settings, migrate=False)

"""WSGI entry point for gunicorn: `imdb_sentiment.serving.http.wsgi:app` (built in each worker).

gunicorn has already configured logging (`logconfig_dict` in gunicorn.conf.py); other WSGI
servers get the same JSON lines from `serving.logs.configure`.
"""

import logging

from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.logs import configure
from imdb_sentiment.serving.service_settings import load_settings

if not logging.getLogger().handlers:
    configure(load_settings().log_format)

app = create_app()

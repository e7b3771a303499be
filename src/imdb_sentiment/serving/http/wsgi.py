"""WSGI entry point for gunicorn: `imdb_sentiment.serving.http.wsgi:app` (built in each worker)."""

import logging

from imdb_sentiment.serving.http.app import create_app

# gunicorn configures only its own loggers; let the app's warnings (cache fallback, failed
# reloads) reach the same stream.
logging.basicConfig(
    level=logging.INFO, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
)

app = create_app()

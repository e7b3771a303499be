"""WSGI entry point for gunicorn: `imdb_sentiment.serving.wsgi:app` (built in each worker)."""

from imdb_sentiment.serving.app import create_app

app = create_app()

"""gunicorn's configuration file (`imdb-sentiment serve` passes it): the process model, its
settings and hooks are `imdb_sentiment.serving.server.Server`'s; gunicorn reads them from here."""

from imdb_sentiment.serving.server import Server
from imdb_sentiment.serving.service_settings import load_settings

globals().update(Server(load_settings()).gunicorn_options())

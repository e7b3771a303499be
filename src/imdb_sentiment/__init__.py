"""IMDB sentiment: a reproducible DVC + MLflow pipeline and a Flask prediction service."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("imdb-sentiment")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.pipeline import Pipeline

from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.service_settings import load_settings


@pytest.fixture
def app(small_model: Pipeline) -> Flask:
    settings = load_settings(max_text_chars=2000, max_batch_size=4, max_body_bytes=8192)
    return create_app(settings, model=small_model)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    names = ["", "gunicorn.error", "gunicorn.access"]
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level) for n in names}
    yield
    for name, (handlers, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)

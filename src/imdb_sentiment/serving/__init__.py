"""The prediction service, in three layers (each sub-package's docstring says what it owns):

- `scoring/`  the model as a few numpy arrays: clean, look up n-grams, weigh, score, explain.
              Imports numpy and `imdb_sentiment.text`; `scoring.compile` alone also scikit-learn.
- `model/`    model delivery: the registry sync, the local model cache, the store that hot-swaps
              the served model, the gunicorn master's supervisor. Imports `scoring`, never Flask.
- `http/`     the Flask app: JSON API, web page, docs, operational endpoints. Imports `model`
              and `scoring`; nothing below imports it.

Shared by `model` and `http`: `metrics.py` (Prometheus), `logs.py` (JSON log lines with the
request id), `predictions.py` (the sampled prediction log). `gunicorn.conf.py` is configuration.
Dependencies point downwards only: `http` → `model` → `scoring` (a test fails on a cycle).
"""

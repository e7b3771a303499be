"""The prediction service, in two layers over the model runtime (`imdb_sentiment.runtime`):

- `model/`    model delivery to the workers: the sync sidecar, the store that hot-swaps the served
              model, the gunicorn master's supervisor. Never Flask.
- `http/`     the Flask app: JSON API, OIP, web page, docs, operational endpoints. Imports `model`;
              nothing below imports it.

Shared by `model` and `http`: `metrics.py` (Prometheus), `logs.py` (JSON log lines with the
request id), `predictions.py` (the sampled prediction log). `gunicorn.conf.py` is configuration.
Dependencies point downwards only: `http` → `model` → `runtime` (import-linter contracts).
"""

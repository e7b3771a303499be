"""The prediction service, over the model runtime (`imdb_sentiment.runtime`) and the store.

- `server`      the process model: gunicorn's master, workers, the model sync process, the gRPC
                fronts, graceful stop (`gunicorn.conf.py` only hands it to gunicorn);
                `access_log` is gunicorn's JSON access logger.
- `grpc/`       the V2 gRPC front, and `http/` the Flask app (JSON API, MLflow's protocol, OIP,
                web page, docs, operational endpoints): adapters over `scoring`, neither
                importing the other, and the gRPC one loads no web framework.
- `scoring`     the scoring service: a request's texts in, predictions, records, shadow scores
                and metrics out; a process's resources and what every front asks of them.
- `live_model`  the served model (and the shadowed candidate), hot-swapped from the cache.
- `metrics`, `logs`, `predictions` (the sampled prediction log), `tensors` (OIP binary data),
  `auth` (bearer tokens), `api_errors` (`ApiError`), `service_settings` (everything the service
  reads from the environment).

Each imports only those listed after it (import-linter's `serving` and `fronts` contracts).
"""

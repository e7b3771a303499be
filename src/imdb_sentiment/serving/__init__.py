"""The prediction service, over the model runtime (`imdb_sentiment.runtime`) and the store.

- `server`      the process model: gunicorn's master, workers, the model sync process, the gRPC
                fronts, graceful stop (`gunicorn.conf.py` only hands it to gunicorn).
- `grpc/`       the V2 gRPC front.
- `http/`       the Flask app: JSON API, OIP, web page, docs, operational endpoints.
- `scoring`     scoring as every front does it: metrics, prediction log, records, the shadow.
- `live_model`  the served model (and the shadowed candidate), hot-swapped from the cache.
- `metrics`, `logs`, `predictions` (the sampled prediction log), `tensors` (OIP binary data),
  `service_settings` (everything the service reads from the environment).

Each imports only those listed after it (import-linter's `serving` contract).
"""

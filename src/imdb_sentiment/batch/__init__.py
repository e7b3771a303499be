"""Batch scoring of review files with the registered model's compiled scorer.

`imdb-sentiment predict` is the entry point. `model` resolves a `models:/` URI to one version and
its compiled scorer (MLflow is imported there, on the driver only); `files` reads and writes
CSV, Parquet and JSON Lines in streamed chunks; `local` scores those chunks on a process pool;
`spark` does the same on a Spark cluster, whose executors run `executor` — which imports only
numpy, pandas and `serving.scoring.scorer`, never scikit-learn or MLflow.

May import: `config`, `errors`, `io`, `serving.scoring.scorer`, `serving.model.cache`,
`serving.model.sync`.
Nothing here is imported by the service.
"""

"""Batch scoring of review files with the registered model's compiled scorer.

`imdb-sentiment predict` is the entry point. `runtime.resolve` gives a `models:/` URI's version
and compiled scorer (MLflow is imported there, on the driver only); `files` reads and writes
CSV, Parquet and JSON Lines in streamed chunks; `local` scores those chunks on a process pool;
`spark` does the same on a Spark cluster, whose executors run `executor` — never scikit-learn,
MLflow or Flask (import-linter's `scorer-light` contract, transitively).
"""

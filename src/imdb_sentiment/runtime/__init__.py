"""The model runtime: a registered model compiled to a few numpy arrays, cached, and scored; what
every application needs, below all of them.

- `compile`  a fitted pipeline compiled to the scorer's arrays (scikit-learn and the pipeline's
             own estimators, `model.features` and `model.classifier`: only where a model is
             compiled, never in a serving worker).
- `scorer`   the compiled scorer: clean, look up n-grams, weigh, score, explain.
- `scorer_files` the scorer on disk (save, load, its description and threshold).
- `kernel`   its batch loop in C (`_kernel.c`), where built; else the pure-Python path.
- `cache`    the local model cache: versions, their compiled scorers, the pointer to the served one.
- `sync`     the registry sync that fills the cache (MLflow, imported lazily).
- `resolve`  a `models:/` URI to one cached version and its scorer (batch scoring, drift).

What may load scikit-learn or MLflow, and where, is import-linter's `scorer-light` and
`workers-light` contracts (pyproject.toml).
"""

"""The model runtime: what every application needs to use a registered model, below all of them.

- `compile`  a fitted pipeline compiled to a few numpy arrays (imports scikit-learn and the
             pipeline's own estimators, `features` and `classifier`: only where a model is
             compiled, never in a serving worker).
- `scorer`   the compiled scorer: clean, look up n-grams, weigh, score, explain (numpy and
             `text` only).
- `highlight` explanations mapped back onto the review's words.
- `cache`    the local model cache: versions, their compiled scorers, the pointer to the served one.
- `sync`     the registry sync that fills the cache (MLflow, imported lazily).
- `resolve`  a `models:/` URI to one cached version and its scorer (batch scoring, drift).
- `records`  the prediction record: one schema, written by the service, stored by `store`, read by
             `monitoring`.

Imports: numpy, the standard library, `text`, `labels`, `config`, `settings`, `errors`,
`atomic`, `tracking`, and (`compile` only) scikit-learn, `features`, `classifier`. Never an
application (`serving`, `batch`, `monitoring`) nor `store` (import-linter contracts in
pyproject.toml).
"""

"""Model delivery: which model version is served and how it reaches the workers.

`sync` follows the registry alias (or a pinned version / baked copy) and fills the local model
`cache`; `store` serves the cache's current version and hot-swaps it; `supervisor` keeps the
sync process alive under gunicorn's master.

May import `serving.scoring`, `serving.metrics`, `config`, `atomic` and (lazily, in `sync` only)
MLflow. Never Flask or `serving.http`.
"""

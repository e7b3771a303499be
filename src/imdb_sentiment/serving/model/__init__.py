"""Model delivery to the service's workers: which version is served and how it reaches them.

`sync` is the gunicorn sidecar that runs `runtime.sync.RegistrySync` (the registry alias, a
pinned version or the image's baked copy, into `runtime.cache`); `store` serves the cache's
current version and hot-swaps it; `supervisor` keeps the sidecar alive under gunicorn's master.

May import `runtime`, `serving.metrics`, `serving.logs`, `config`. Never Flask or `serving.http`.
"""

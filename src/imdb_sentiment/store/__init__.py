"""The prediction store: every prediction record and every label, in one SQL database that all
replicas of the service share (SQLAlchemy Core; SQLite embedded by default, PostgreSQL in
production), its schema owned by Alembic migrations (`migrations/`).

- `records`  the prediction record: one schema, made by the service's scoring, stored here, read
             by `monitoring`.
- `tables`   the schema as SQLAlchemy Core tables (what migrations create, what code queries).
- `database` `PredictionStore`: records into the pod's spool, one flusher per pod into the
             database, retention once per interval, the bounded feedback path, the readers;
             `open_store` / `upgrade` for the CLI.
- `spool`    the pod's durable, bounded queue of records on their way to the database.
- `schema`   which schema a database holds, and whether this release can use it.
- `engine`   engines for the store's URL, every wait bounded.
- `store_settings` where the store is (DATABASE_URL), its spool, retention, timeouts, budgets.
"""

"""The prediction store: every prediction record and every label, in one SQL database that all
replicas of the service share (SQLAlchemy Core; SQLite embedded by default, PostgreSQL in
production), its schema owned by Alembic migrations (`migrations/`).

- `database`     `PredictionStore`, the façade: records into the pod's spool, the flusher
                 started, retention once per interval, the bounded feedback path, the readers;
                 `open_store` for the CLI.
- `migrate`      `upgrade` (one migrator at a time) and `schema_state`.
- `flusher`      the thread that writes the spool to the database, and judges the schema.
- `retention`    unlabelled predictions past the window, pruned by one replica per interval.
- `spool`        the pod's durable, bounded queue of records on their way to the database: its
                 directory of per-process files (`spool_file`); their bodies' format is `records`'.
- `schema`       which schema a database holds, and whether this release can use it.
- `engine`       engines for the store's URL, every wait bounded.
- `records`      the prediction record and its forms (database row, spooled row, spool body):
                 one schema, made by the service's scoring, stored here, read by `monitoring`.
- `tables`       the schema as SQLAlchemy Core tables (what migrations create, what code queries).
- `store_errors` what the store raises.
- `store_settings` where the store is (DATABASE_URL), its spool, retention, timeouts, budgets.

Each imports only those listed after it (import-linter's `store` contract).
"""

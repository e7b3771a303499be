"""The prediction store: every prediction record and every label, in one SQL database that all
replicas of the service share (SQLAlchemy Core; SQLite embedded by default, PostgreSQL in
production), its schema owned by Alembic migrations (`migrations/`).

- `tables`   the schema as SQLAlchemy Core tables (what migrations create, what code queries).
- `database` `PredictionStore`: the service's bounded, batched writer and the feedback path;
             `open_store` / `upgrade` for the CLI.
- `settings` where the store is (DATABASE_URL) and how long it keeps unlabelled predictions.

Imports: SQLAlchemy, Alembic (migrations only), pydantic-settings, the standard library,
`background`, `settings`, `errors`, `labels`, `runtime.records`. Nothing under `serving` or
`batch`.
"""

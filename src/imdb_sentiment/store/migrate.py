"""Migrating the prediction store: `upgrade` brings a database to this release's newest schema
revision (Alembic, `store/migrations/`), one migrator at a time — PostgreSQL's advisory lock
(`migrations/env.py`), a lock file beside an SQLite database — and `schema_state` reads what a
database holds without changing it (`store.schema` judges it)."""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from imdb_sentiment.store.engine import make_engine
from imdb_sentiment.store.schema import MIGRATIONS, SchemaState, inspect_schema
from imdb_sentiment.store.store_errors import SchemaError, StoreUnavailableError, reason
from imdb_sentiment.store.store_settings import Timeouts

log = logging.getLogger(__name__)


MIGRATION_ATTEMPTS = (
    6  # a DDL lock not had within the lock timeout: tried again, pausing 1, 2, 4 … s
)


def upgrade(url: str, timeouts: Timeouts | None = None) -> SchemaState:
    """Bring the schema to this release's newest revision, once per release (the release step;
    a server's master for DATABASE_MIGRATE=auto). A newer schema this release does not know
    is left alone when it is compatible (a rollback meeting the next release's schema), and a
    `SchemaError` when it is not; never alembic's "Can't locate revision". A revision whose DDL
    waited longer than the lock timeout (pods' traffic holds the table) is tried again, a few
    times, with growing pauses: each wait is short, so inserts never queue long behind it."""
    for attempt in range(MIGRATION_ATTEMPTS):
        try:
            return _upgrade_once(url, timeouts)
        except _LockWaitError as exc:
            pause = 2.0**attempt
            log.warning("migration waited too long for a lock (%s); again in %.0f s", exc, pause)
            time.sleep(pause)
    raise StoreUnavailableError(
        f"cannot migrate the prediction store: a lock was not had in {MIGRATION_ATTEMPTS} tries"
    )


class _LockWaitError(Exception):
    pass


def _upgrade_once(url: str, timeouts: Timeouts | None) -> SchemaState:
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # its start-up chatter
    timeouts = timeouts or Timeouts(statement_s=600.0, lock_s=5.0)
    engine = make_engine(url, timeouts, pool_size=1)
    try:
        # One migrator at a time: PostgreSQL's advisory lock (migrations/env.py) serialises the
        # migration itself; on SQLite every worker of a first start would race to create
        # alembic_version, so the whole check-then-migrate runs under a lock file.
        with sqlite_migration_lock(url, timeouts.statement_s), engine.connect() as connection:
            state = inspect_schema(connection)
            if state.status == "incompatible":
                raise SchemaError(state.detail)
            if state.status in ("missing", "older"):
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = connection  # migrations/env.py runs on it
                command.upgrade(config, "head")
                connection.commit()
                state = inspect_schema(connection)
    except (SQLAlchemyError, OSError, CommandError) as exc:
        if getattr(getattr(exc, "orig", None), "sqlstate", None) == "55P03":  # lock_not_available
            raise _LockWaitError(reason(exc)) from exc
        raise StoreUnavailableError(f"cannot migrate the prediction store: {reason(exc)}") from exc
    finally:
        engine.dispose()
    return state


@contextmanager
def sqlite_migration_lock(url: str, wait_s: float) -> Iterator[None]:
    """An exclusive lock file beside an SQLite database (nothing for other databases)."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        yield
        return
    path = Path(database).absolute().with_name(Path(database).name + ".migration-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreUnavailableError(
                        f"another process held the migration lock {path} for {wait_s:.0f} s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def schema_state(engine: Engine) -> SchemaState:
    """The schema this engine's database holds, judged by this release (reads only)."""
    try:
        with engine.connect() as connection:
            return inspect_schema(connection)
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailableError(reason(exc)) from exc

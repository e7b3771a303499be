"""SQLAlchemy engines for the store's URL, every wait bounded (`store.store_settings.Timeouts`).

PostgreSQL: libpq's connect timeout; `statement_timeout` and `lock_timeout` set for the session
at connect (a statement blocked behind an `ALTER TABLE` gives up instead of queueing every
insert behind it); TCP keepalives and `tcp_user_timeout`, so a half-open pooled connection is
found dead in seconds, not at the kernel's two-hour default. The pool's own wait for a free
connection is the connect timeout. SQLite: WAL (several processes write one file) and a busy
timeout equal to the statement timeout. Every dialect checks a pooled connection before use, so a
database that restarted is reconnected to without restarting anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from imdb_sentiment.store.store_settings import Timeouts

KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 3
KEEPALIVE_COUNT = 3


def make_engine(url: str, timeouts: Timeouts | None = None, pool_size: int = 2) -> Engine:
    timeouts = timeouts or Timeouts()
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            # A relative file is the one meant now: a pool opens connections later.
            database = str(Path(database).absolute())
            url = parsed.set(database=database).render_as_string(hide_password=False)
        return _sqlite(url, database, timeouts)
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args = postgres_connect_args(timeouts)
    return create_engine(
        url, pool_pre_ping=True, pool_size=pool_size, max_overflow=2,
        pool_timeout=timeouts.connect_s, connect_args=connect_args,
    )  # fmt: skip


def postgres_connect_args(timeouts: Timeouts) -> dict[str, Any]:
    statement_ms, lock_ms = round(timeouts.statement_s * 1000), round(timeouts.lock_s * 1000)
    return {
        "connect_timeout": timeouts.connect_s,
        "options": f"-c statement_timeout={statement_ms} -c lock_timeout={lock_ms}",
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE_S,
        "keepalives_interval": KEEPALIVE_INTERVAL_S,
        "keepalives_count": KEEPALIVE_COUNT,
        # Sent data unacknowledged this long: the connection is dead (a peer that vanished).
        "tcp_user_timeout": (KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S * KEEPALIVE_COUNT) * 1000,
    }


def _sqlite(url: str, database: str | None, timeouts: Timeouts) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True, connect_args={"timeout": timeouts.statement_s})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi: Any, _: Any) -> None:
        cursor = dbapi.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine

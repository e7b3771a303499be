"""Writing the spool to the database: a process's flusher thread, and what it does each round.

Each round the flusher writes this process's spool file, oldest first, in batches (a moment after
a request woke it, so that a batch carries many records), and every few seconds does the chores:
it writes out the files of processes that are gone (`Spool.orphans`), expires what is past the
spool's age bound, and runs retention when it is due; every round ends by publishing its file's
totals (for the pod's probes and metrics) when they changed.

A batch the database refuses is told apart by why:
- **away** (connection refused, a timeout, a lock it could not get): the batch waits, and the
  flusher retries with a growing pause, up to RETRY_MAX_S;
- **for good** (a value it cannot store, a constraint: `refused_for_good`): the batch is written
  one request at a time, and each request refused for good is set aside in the spool's
  quarantine, logged once with its request id and the reason, and counted; the rest flows.

The flusher cannot die: whatever a round raises is logged (its traceback once a minute at most)
and the round retried after a pause; `PredictionStore.remember` starts a new flusher if the
thread is gone all the same. Each finished round is reported (`on_round`), so a flusher that
stalled shows (alert PredictionSpoolFlusherStalled).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from contextlib import closing
from typing import Any, Protocol

from sqlalchemy import TextClause, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import (
    ArgumentError,
    CompileError,
    DataError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)

from imdb_sentiment.store.records import body_shape, shape_fields
from imdb_sentiment.store.retention import Retention
from imdb_sentiment.store.schema import SchemaState
from imdb_sentiment.store.spool import Spool
from imdb_sentiment.store.spool_file import Taken
from imdb_sentiment.store.store_errors import reason
from imdb_sentiment.store.tables import predictions


class Writable(Protocol):
    """What writing the spool needs of the store (store.database.PredictionStore), so that the
    flusher depends on no more than this and the store module on the flusher alone."""

    @property
    def engine(self) -> Engine: ...

    spool: Spool | None
    retention: Retention
    _json_insert: bool | None

    def check_schema(self) -> SchemaState | None: ...


log = logging.getLogger("imdb_sentiment.store.database")  # one logger for the store's lines
FLUSH_BATCH = 1000  # records per database transaction (and the spool budget's bytes)
FLUSH_LINGER_S = 0.05  # after a request wakes the flusher: a record waits ~50 ms
RETRY_MAX_S = 5.0  # the longest pause between attempts while the database is away
CHORES_EVERY_S = 5.0  # orphans, expiry, totals, retention (when due)
TRACEBACK_EVERY_S = 60.0
_NULLS: dict[str, Any] = dict.fromkeys(column.name for column in predictions.columns)


class FlushFailedError(Exception):
    """The database is away (or too slow): the batch waits in the spool."""


class RefusedError(Exception):
    """The database answers, and refuses these records for good."""


def refused_for_good(exc: BaseException) -> bool:
    """A failure that retrying cannot mend: data the database cannot store (NUL in a text, a
    value too long, an encoding), a constraint, a body that is not what the insert reads."""
    if isinstance(exc, (DataError, IntegrityError, CompileError, ArgumentError)):
        return True
    if isinstance(exc, OperationalError):
        return "malformed JSON" in str(exc)  # SQLite reading a body that is not JSON
    original = getattr(exc, "orig", None) if isinstance(exc, StatementError) else exc
    return isinstance(original, (ValueError, TypeError, KeyError))


def write_spool(store: Writable, spool: Spool, until: float | None = None) -> None:
    """Write this process's spool file to the database, oldest first, in batches, until a batch
    is not full, or the monotonic time `until` has passed. Raises FlushFailedError while the
    database is away."""
    while True:
        batch = spool.take(FLUSH_BATCH)
        if not batch.seqs:
            return
        write_batch(store, spool, batch)
        if not batch.more:  # caught up: what came meanwhile waits for the next round
            return  # (chasing it would write one tiny transaction per request)
        if until is not None and time.monotonic() > until:
            return


def write_orphans(store: Writable, spool: Spool) -> None:
    """Write out the files of processes that are gone (stops while the database is away)."""
    with closing(spool.orphans()) as batches:
        for batch in batches:
            write_batch(store, spool, batch)


def write_batch(store: Writable, spool: Spool, batch: Taken) -> None:
    try:
        insert(store, batch.bodies)
    except RefusedError:
        write_apart(store, spool, batch)
        return
    spool.ack(batch)


def write_apart(store: Writable, spool: Spool, batch: Taken) -> None:
    """One request at a time: what the database refuses for good goes to the quarantine."""
    for seq, body in zip(batch.seqs, batch.bodies, strict=True):
        try:
            insert(store, [body])
        except RefusedError as exc:
            log.error("prediction store refuses request %s for good (%s): set aside in the "
                      "spool's quarantine", _request_id(body), exc)  # fmt: skip
            spool.quarantine(batch, seq, str(exc))
        else:
            spool.ack(batch, [seq])


def insert(store: Writable, bodies: list[str]) -> None:
    """Insert the records of these spool bodies in one transaction, ignoring those stored
    already. RefusedError: refused for good; FlushFailedError: the database is away."""
    try:
        with store.engine.begin() as db:
            if inserts_json(store):
                for shape, group in _by_shape(bodies).items():
                    db.execute(_sqlite_insert(shape), [{"body": b} for b in group])
            else:
                taken = Taken([], bodies, 0, False)
                rows = [{**_NULLS, **row} for row in taken.rows()]  # every key there
                db.execute(_insert_ignoring_duplicates(store), rows)
    except Exception as exc:
        if refused_for_good(exc):
            raise RefusedError(reason(exc)) from exc
        if isinstance(exc, (SQLAlchemyError, OSError)):
            raise FlushFailedError(reason(exc)) from exc
        raise


def inserts_json(store: Writable) -> bool:
    """SQLite with its JSON functions (built in since 3.38): the spool's bodies go in as they
    are, parsed and inserted by SQLite itself — the flusher's Python work per record (parsing, a
    dict, binding 14 parameters) was most of a short review's cost."""
    if store._json_insert is None:
        if store.engine.dialect.name != "sqlite":
            store._json_insert = False
            return False
        try:
            with store.engine.connect() as db:
                db.exec_driver_sql("SELECT COUNT(*) FROM json_each('[1]')")
            store._json_insert = True
        except SQLAlchemyError as exc:
            if "json_each" not in str(exc):  # the database is away: ask again next time
                return False
            store._json_insert = False
            log.info("SQLite without JSON functions: the spool is written row by row")
    return store._json_insert


def _insert_ignoring_duplicates(store: Writable) -> Any:
    """Insert, skipping a record already stored (the same record flushed twice)."""
    keys = [predictions.c.request_id, predictions.c.item]
    if store.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(predictions).on_conflict_do_nothing(index_elements=keys)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(predictions).on_conflict_do_nothing(index_elements=keys)


def _by_shape(bodies: list[str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for body in bodies:
        grouped.setdefault(body_shape(body), []).append(body)
    return grouped


@functools.lru_cache(maxsize=64)
def _sqlite_insert(shape: str) -> TextClause:
    """INSERT of spooled requests of one shape (`spool.body_shape`) by SQLite's JSON functions,
    skipping a record already stored; every column of the table, by name (a field a body lacks
    is NULL, as in a row-by-row insert). A v2 body (`[`, objects keyed by column): a field
    from each record's object. This format's: a varying field at its known position in the
    record's array, a shared one from the body — the same for every record, so SQLite
    evaluates it once per body."""
    names = [column.name for column in predictions.columns]
    varying = shape_fields(shape)
    if varying is None:
        picks = [f"json_extract(value, '$.{name}')" for name in names]
        rows = "json_each(:body)"
    else:
        picks = [f"json_extract(value, '$[{varying.index(name)}]')" if name in varying
                 else f"json_extract(:body, '$.c.{name}')" for name in names]  # fmt: skip
        rows = "json_each(:body, '$.r')"
    return text(
        f"INSERT INTO {predictions.name} ({', '.join(names)}) SELECT {', '.join(picks)} "
        f"FROM {rows} WHERE true "  # WHERE: SQLite's parser needs it before ON CONFLICT
        "ON CONFLICT (request_id, item) DO NOTHING"
    )


def _request_id(body: str) -> str:
    try:
        rows = Taken([], [body], 0, False).rows()
    except ValueError:
        return "(unreadable body)"
    return str(rows[0].get("request_id")) if rows else "(empty body)"


class Flusher(threading.Thread):
    """A process's background work for the store: judge the schema now and then; write this
    process's spool file to the database; the chores (module docstring)."""

    def __init__(self, store: Writable, schema_every_s: float,
                 on_round: Callable[[float], None] | None = None) -> None:  # fmt: skip
        super().__init__(name="prediction-store", daemon=True)
        self.store = store
        self.schema_every_s = schema_every_s
        self.on_round = on_round  # told the time of each finished round (a metric)
        self._stopping = threading.Event()
        self._wake = threading.Event()  # set by `remember` in this process: records to write
        self._failing_since: float | None = None
        self._retry_at = 0.0
        self._last_warned = 0.0
        self._last_traceback = 0.0
        self._next_schema = 0.0
        self._next_chores = 0.0

    def run(self) -> None:
        pause = 0.0
        while True:
            woke = self._wake.wait(pause)
            self._wake.clear()
            if self._stopping.is_set():
                return
            if woke and self._failing_since is not None and time.monotonic() < self._retry_at:
                pause = self._retry_at - time.monotonic()  # the database is away: back off
                continue
            if woke:
                time.sleep(FLUSH_LINGER_S)  # let a burst of requests land in one batch
            try:
                pause = self._round()
            except Exception:  # anything else: logged, retried; this thread never ends
                pause = self._unexpected()
            if self.on_round is not None:
                self.on_round(time.time())

    def _round(self) -> float:
        now = time.monotonic()
        if now >= self._next_schema:
            state = self.store.check_schema()
            usable = state is not None and state.usable
            self._next_schema = now + self.schema_every_s * (6 if usable else 1)
        spool = self.store.spool
        if spool is None:
            return max(0.0, self._next_schema - time.monotonic())
        if now >= self._next_chores:
            self._next_chores = now + CHORES_EVERY_S
            self._chore(lambda: write_orphans(self.store, spool), "writing a gone process's spool")
            self._chore(spool.expire, "spool expiry")
            self._chore(self.store.retention.run_if_due, "retention")
        pause = self._flush_once(spool)
        self._chore(spool.publish, "spool totals")  # a row write only when they changed
        return pause

    def _flush_once(self, spool: Spool) -> float:
        """Write the spool out; the pause before the next attempt."""
        try:
            write_spool(self.store, spool)
        except FlushFailedError as exc:
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
            if now - self._last_warned > 30:
                self._last_warned = now
                log.warning("prediction store unavailable (%s): records wait in the spool", exc)
            pause = min(RETRY_MAX_S, max(0.2, (now - self._failing_since) / 4))
            self._retry_at = now + pause
            return pause
        if self._failing_since is not None:
            log.info("prediction store back: the spool is written")
            self._failing_since = None
            self._last_warned = 0.0
        return CHORES_EVERY_S  # idle until a request wakes it, or the next chores

    def _unexpected(self) -> float:
        now = time.monotonic()
        if now - self._last_traceback > TRACEBACK_EVERY_S:
            self._last_traceback = now
            log.exception("prediction store flusher: unexpected failure; retrying")
        return RETRY_MAX_S

    @staticmethod
    def _chore(action: Callable[[], object], what: str) -> None:
        try:
            action()
        except Exception as exc:  # retried at the next interval
            away = isinstance(exc, (FlushFailedError, OSError)) or (
                isinstance(exc, SQLAlchemyError) and not refused_for_good(exc)
            )
            # The database away is the flush's to say (once); anything else is news.
            log.log(logging.DEBUG if away else logging.WARNING,
                    "prediction store: %s %s (%s)", what, "skipped" if away else "failed",
                    reason(exc))  # fmt: skip

    def wake(self) -> None:
        self._wake.set()

    def stop(self, drain_s: float) -> None:
        """Stop the thread, then write what can be written within `drain_s`; what is left stays
        in the spool for the next process (this process's file is taken over)."""
        self._stopping.set()
        self._wake.set()
        self.join(timeout=drain_s + 5)
        spool = self.store.spool
        if spool is None:
            return
        try:
            write_spool(self.store, spool, until=time.monotonic() + drain_s)
        except (FlushFailedError, Exception) as exc:
            left = spool.state().records
            log.warning("prediction store unavailable at stop (%s): %d record(s) stay in the "
                        "spool for the next process", reason(exc), left)  # fmt: skip
        finally:
            spool.close()

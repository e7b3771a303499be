"""`PredictionStore`: prediction records and labels in one SQL database shared by every replica.

The prediction path never waits for the database: `remember` puts a request's records in the
pod's spool (`store.spool`: a local SQLite file per process, durable before the response is
sent), and a thread of the same process (`store.flusher`) writes them to the database, oldest
first, in batches: within ~50 ms while the database answers, and when it is back after an
outage — across worker and pod restarts, since the spool is on the pod's volume and a gone
process's file is taken over. Inserts ignore a record already stored (its key is the server's
own unique id), so a batch written twice is stored once; a record the database refuses for good
is quarantined, never in the way of the others. The same thread judges the schema the database
holds (`store.schema`), and runs retention (`store.retention`) once per interval across every
replica.

The feedback path reads and writes the database synchronously, within a budget
(`FEEDBACK_BUDGET_S`): an unavailable or silent database is a `StoreUnavailableError` (the API's
503) within it, never a lost acknowledged label and never a worker held for longer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, and_, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from imdb_sentiment.core.labels import POSITIVE, Label
from imdb_sentiment.store.engine import make_engine
from imdb_sentiment.store.flusher import Flusher, write_spool
from imdb_sentiment.store.migrate import schema_state
from imdb_sentiment.store.records import PredictionRecord, as_row, as_spooled, from_row
from imdb_sentiment.store.retention import Retention
from imdb_sentiment.store.schema import SchemaState
from imdb_sentiment.store.spool import Spool
from imdb_sentiment.store.spool_file import SpoolError
from imdb_sentiment.store.store_errors import (
    DuplicateFeedbackError,
    NoStoreError,
    PendingPredictionError,
    StoreUnavailableError,
    UnknownPredictionError,
    reason,
)
from imdb_sentiment.store.store_settings import StoreSettings, Timeouts
from imdb_sentiment.store.tables import feedback, predictions

log = logging.getLogger(__name__)
# A prediction reaches the database up to the writer's linger (50 ms) plus a transaction after
# its response; feedback that races it (a script posting at once, to another replica) waits this
# long before the id is called unknown. Short on purpose: each wait holds a sync worker.
LOOKUP_PATIENCE_S = 0.2
SCHEMA_RECHECK_S = 10.0  # while unusable; six times that once usable
FEEDBACK_THREADS = 2  # feedback calls in flight per process; more are a 503 at once
T = TypeVar("T")


@dataclass(frozen=True)
class Labelled:
    prediction: PredictionRecord
    actual: Label

    @property
    def correct(self) -> bool:
        return self.prediction.label == self.actual

    @property
    def outcome(self) -> str:
        """tp / tn / fp / fn, positive being the positive class."""
        hit = "t" if self.correct else "f"
        return hit + ("p" if self.prediction.label == POSITIVE else "n")


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def open_store(url: str, timeouts: Timeouts | None = None) -> PredictionStore:
    """An existing store to read from (CLI): one line if it is missing, unmigrated or down.
    `timeouts`: a reader's own (a report's query may run longer than a request's)."""
    from sqlalchemy import inspect

    if not url:
        raise NoStoreError("no prediction store: DATABASE_URL is empty")
    shown = make_url(url).render_as_string(hide_password=True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").exists():
        raise NoStoreError(f"no prediction store at {shown} (DATABASE_URL)")
    store = PredictionStore(url, timeouts=timeouts)  # a reader: no spool
    try:
        with store.engine.connect() as db:
            tables = set(inspect(db).get_table_names())
    except SQLAlchemyError as exc:
        raise StoreUnavailableError(
            f"cannot reach the prediction store {shown}: {reason(exc)}"
        ) from exc
    if not {"predictions", "feedback"} <= tables:  # never written to: nothing in it either
        raise NoStoreError(
            f"the prediction store {shown} has no schema: run `imdb-sentiment db upgrade`"
        )
    return store


class PredictionStore:
    def __init__(
        self,
        url: str,
        keep_text: bool = False,
        retention_hours: float = 168.0,
        timeouts: Timeouts | None = None,
        spool: Spool | None = None,
        prune_interval_s: float = 300.0,
        feedback_budget_s: float = 5.0,
        retention_statement_s: float = 60.0,
    ) -> None:
        self.url = url
        self.keep_text = keep_text
        self.retention_s = retention_hours * 3600
        self.timeouts = timeouts or Timeouts()
        self.spool = spool  # None: a reader (drift, export), never a writer of predictions
        self.prune_interval_s = prune_interval_s
        self.feedback_budget_s = feedback_budget_s
        self._engine: Engine | None = None
        self._engine_pid = 0
        self._engine_lock = threading.Lock()
        self._schema: SchemaState | None = None
        self._looked = False  # a first look was made (whatever it found)
        self._worker: Flusher | None = None
        self._worker_pid = 0
        self.on_flush_round: Callable[[float], None] | None = None  # a metric (serving)
        self.retention = Retention(self, self.retention_s, prune_interval_s,
                                   retention_statement_s)  # fmt: skip
        self._calls: tuple[int, ThreadPoolExecutor, threading.Semaphore] | None = None
        self._json_insert: bool | None = None  # SQLite inserts the spool's JSON (unknown yet)

    @classmethod
    def for_service(
        cls, settings: StoreSettings, keep_text: bool, processes: int = 1
    ) -> PredictionStore:
        """The store a server writes: its spool, bounds and budgets from the settings;
        `processes`: how many of the pod's processes share the spool's directory (its bound)."""
        spool = Spool(
            settings.prediction_spool_dir,
            max_bytes=int(settings.prediction_spool_max_mb * 1024 * 1024),
            max_age_s=settings.prediction_spool_max_age_hours * 3600,
            processes=processes,
        )
        return cls(
            settings.database_url, keep_text=keep_text,
            retention_hours=settings.prediction_retention_hours, timeouts=settings.timeouts(),
            spool=spool, prune_interval_s=settings.prediction_prune_interval_s,
            feedback_budget_s=settings.feedback_budget_s,
            retention_statement_s=settings.database_retention_statement_timeout_s,
        )  # fmt: skip

    @property
    def engine(self) -> Engine:
        # Created in the process that uses it: gunicorn forks workers after the app may exist,
        # and a pooled connection must never cross a fork.
        with self._engine_lock:
            if self._engine is None or self._engine_pid != os.getpid():
                self._engine, self._engine_pid = make_engine(self.url, self.timeouts), os.getpid()
            return self._engine

    # --- the schema this process meets (store.schema) -------------------------------------------
    @property
    def schema(self) -> SchemaState | None:
        """The schema as last judged; None until a look succeeded (or the database is down)."""
        return self._schema

    def check_schema(self) -> SchemaState | None:
        """Look at the database's schema now; one log line whenever the verdict changes. An
        unreachable database keeps the last verdict: it says nothing about the schema."""
        try:
            state = schema_state(self.engine)
        except StoreUnavailableError as exc:
            log.debug("prediction store schema not checked: %s", exc)
            self._looked = True
            return self._schema
        if self._schema is None or state.status != self._schema.status:
            level = logging.INFO if state.usable else logging.ERROR
            log.log(level, "prediction store: %s", state.detail)
        self._schema, self._looked = state, True
        return state

    def unusable_reason(self) -> str | None:
        """Why this process cannot use the store, for readiness; None: usable, or not known to
        be unusable (a database that is down does not make the service unready: predictions
        are still answered, and kept in the spool)."""
        state = self._schema
        if state is None and self._worker is not None and not self._looked:
            return "prediction store schema not checked yet"
        if state is None or state.usable:
            return None
        return f"prediction store schema {state.status}: {state.detail}"

    # --- the background work: one thread per process -------------------------------------------
    def start(
        self, known: SchemaState | None = None, schema_every_s: float = SCHEMA_RECHECK_S
    ) -> None:
        """Start this process's maintenance thread (schema checks; flushing the spool and
        retention where this process holds the flush lock). `known`: the verdict of a
        migration this process just ran. Idempotent per process."""
        if self._running():
            return
        if known is not None:
            self._schema, self._looked = known, True
        self._worker = Flusher(self, schema_every_s, self.on_flush_round)
        self._worker_pid = os.getpid()
        self._worker.start()

    def _running(self) -> bool:
        """This process's flusher is alive (not a forked parent's, not one that ended)."""
        worker = self._worker
        return worker is not None and self._worker_pid == os.getpid() and worker.is_alive()

    def close(self, drain_s: float = 5.0) -> None:
        """Stop the background work; the flusher first writes what it can within `drain_s`.
        What is left stays in the spool for the next flusher (another worker, the next start).
        Idempotent."""
        worker, self._worker = self._worker, None
        if worker is not None and self._worker_pid == os.getpid():
            worker.stop(drain_s)

    # --- the prediction path: into the spool ---------------------------------------------------
    def remember(self, records: list[PredictionRecord]) -> None:
        """Keep one request's records: durable in the spool when this returns. Their texts
        must already be None unless texts are kept. Never raises: a spool that cannot be
        written (its disk failed) is logged and counted."""
        assert self.spool is not None, "this store only reads"
        assert all(r.text is None for r in records) or self.keep_text, "texts are not kept"
        if not self._running():  # first use in this process, or the thread is gone
            self.start()
        try:
            self.spool.append([as_spooled(r) for r in records])
        except SpoolError as exc:
            log.error("%s: %d record(s) lost", exc, len(records))
            self.spool.count_unavailable(len(records))
            return
        assert self._worker is not None
        self._worker.wake()

    def flush(self, until: float | None = None) -> bool:
        """Write this process's spool to the database (`flusher.write_spool`); True once done,
        a FlushFailedError while the database is away."""
        assert self.spool is not None
        write_spool(self, self.spool, until)
        return True

    # --- retention: once per interval across every replica (store.retention) ---------------
    def prune(self, now: float | None = None) -> int:
        """Delete unlabelled predictions older than the retention window, in batches."""
        return self.retention.run(now)

    def prune_if_due(self, now: float | None = None) -> int | None:
        """Run retention if no replica has in the last interval; None: not this replica's."""
        return self.retention.run_if_due(now)

    # --- the feedback path: bounded -------------------------------------------------------------
    def _bounded(self, call: Callable[[float], T]) -> T:
        """Run `call(deadline)` on this process's feedback threads, within the feedback
        budget: past it (or with every thread still waiting for the database) a
        StoreUnavailableError, while the request's worker moves on."""
        if self._calls is None or self._calls[0] != os.getpid():
            pool = ThreadPoolExecutor(FEEDBACK_THREADS, thread_name_prefix="feedback-store")
            self._calls = (os.getpid(), pool, threading.Semaphore(FEEDBACK_THREADS))
        _, pool, slots = self._calls
        if not slots.acquire(blocking=False):
            raise StoreUnavailableError("the database has not answered earlier feedback yet")
        deadline = time.monotonic() + self.feedback_budget_s

        def run() -> T:
            try:
                return call(deadline)
            finally:
                slots.release()

        future = pool.submit(run)
        try:
            return future.result(timeout=self.feedback_budget_s)
        except FutureTimeout:
            raise StoreUnavailableError(
                f"no answer from the database within {self.feedback_budget_s:g} s"
            ) from None

    def lookup(self, request_id: str, item: int) -> PredictionRecord:
        return self._bounded(lambda deadline: self._lookup(request_id, item, deadline))

    def _lookup(self, request_id: str, item: int, deadline: float) -> PredictionRecord:
        patience = min(deadline, time.monotonic() + LOOKUP_PATIENCE_S)
        query = select(predictions).where(
            predictions.c.request_id == request_id, predictions.c.item == item
        )
        while True:
            try:
                with self.engine.connect() as db:
                    row = db.execute(query).mappings().first()
            except (SQLAlchemyError, OSError) as exc:
                raise StoreUnavailableError(reason(exc)) from exc
            if row is not None:
                return from_row(row)
            if time.monotonic() > patience:
                if self.spool is not None and self.spool.holds(request_id):
                    raise PendingPredictionError(request_id)
                raise UnknownPredictionError(request_id)
            time.sleep(0.02)

    def label(self, record: PredictionRecord, actual: Label, text: str | None = None) -> Labelled:
        """Record the true label of a prediction, once. With `text`, the prediction was made for
        this feedback request and is stored with it; the text is labelled once (by its digest,
        whether or not the text itself is kept)."""
        return self._bounded(lambda _: self._label(record, actual, text))

    def _label(self, record: PredictionRecord, actual: Label, text: str | None) -> Labelled:
        digest = text_digest(text) if text is not None else None
        try:
            with self.engine.begin() as db:
                if text is not None:
                    db.execute(predictions.insert(), [as_row(record)])
                db.execute(
                    feedback.insert(),
                    [{"request_id": record.request_id, "item": record.item,
                      "created": time.time(), "actual": actual, "text_sha256": digest}],
                )  # fmt: skip
        except IntegrityError as exc:
            raise DuplicateFeedbackError(record.request_id) from exc
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailableError(reason(exc)) from exc
        return Labelled(record, actual)

    # --- reading: drift and export ----------------------------------------------------------
    def records(
        self, since: float | None = None, until: float | None = None, version: str | None = None
    ) -> Iterator[PredictionRecord]:
        """Oldest first, streamed from a server-side cursor: a week of records does not have
        to fit in memory at once."""
        query = _window(select(predictions), predictions.c, since, until, version)
        try:
            with self.engine.connect().execution_options(yield_per=10_000) as db:
                for row in db.execute(query.order_by(predictions.c.created)).mappings():
                    yield from_row(row)
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(reason(exc)) from exc

    def shadowed(
        self, since: float | None = None, until: float | None = None
    ) -> Iterator[tuple[PredictionRecord, Label | None]]:
        """Predictions the shadowed candidate also scored, with their true label if one was
        given (None otherwise), oldest first, streamed."""
        joined = predictions.outerjoin(
            feedback,
            and_(feedback.c.request_id == predictions.c.request_id,
                 feedback.c.item == predictions.c.item),
        )  # fmt: skip
        query = select(predictions, feedback.c.actual).select_from(joined)
        query = _window(query, predictions.c, since, until, None)
        query = query.where(predictions.c.shadow_version.is_not(None))
        try:
            with self.engine.connect().execution_options(yield_per=10_000) as db:
                for row in db.execute(query.order_by(predictions.c.created)).mappings():
                    yield from_row(row), row["actual"]
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(reason(exc)) from exc

    def shadow_label_counts(
        self, candidate: str, production: str | None
    ) -> dict[tuple[str, str, str], int]:
        """Labelled reviews `candidate` shadowed (beside `production`, any version when None),
        counted by (production's label, the candidate's, the true one): one GROUP BY."""
        p = predictions.c
        joined = predictions.join(
            feedback, and_(feedback.c.request_id == p.request_id, feedback.c.item == p.item)
        )
        query = (select(p.label, p.shadow_label, feedback.c.actual, func.count())
                 .select_from(joined).where(p.shadow_version == candidate)
                 .group_by(p.label, p.shadow_label, feedback.c.actual))  # fmt: skip
        if production is not None:
            query = query.where(p.model_version == production)
        try:
            with self.engine.connect() as db:
                return {(a, b, c): int(n) for a, b, c, n in db.execute(query)}
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(reason(exc)) from exc

    def labelled(
        self, since: float | None = None, until: float | None = None, version: str | None = None
    ) -> Iterator[tuple[PredictionRecord, Label, float]]:
        """(prediction, true label, labelled at) per label, oldest first."""
        joined = feedback.join(
            predictions,
            and_(feedback.c.request_id == predictions.c.request_id,
                 feedback.c.item == predictions.c.item),
        )  # fmt: skip
        query = select(predictions, feedback.c.actual, feedback.c.created.label("labelled_at"))
        query = _window(query.select_from(joined), feedback.c, since, until, None)
        if version is not None:
            query = query.where(predictions.c.model_version == version)
        try:
            with self.engine.connect() as db:
                for row in db.execute(query.order_by(feedback.c.created)).mappings():
                    yield from_row(row), row["actual"], float(row["labelled_at"])
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(reason(exc)) from exc


def _window(query: Any, columns: Any, since: float | None, until: float | None,
            version: str | None) -> Any:  # fmt: skip
    if since is not None:
        query = query.where(columns.created >= since)
    if until is not None:
        query = query.where(columns.created < until)
    if version is not None:
        query = query.where(columns.model_version == version)
    return query

"""`PredictionStore`: prediction records and labels in one SQL database shared by every replica.

Writes stay off the request path: `remember` puts a record on a bounded in-memory queue (a few
microseconds) and a background thread inserts whatever is queued in one transaction
(`background`). When the queue is full (the database is slow) or a batch cannot be written (the
database is down), the records are dropped, counted through `on_drop`, and logged; the next batch
tries again, so the store recovers by itself when the database returns (connections are checked
before use). The feedback path reads and writes synchronously: an unavailable database is a
`StoreUnavailableError` (the API's 503), never a lost acknowledged label.

Retention is enforced in the database: unlabelled predictions older than the retention window
are deleted by the writer every few minutes; labelled ones are training data and stay.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from imdb_sentiment.background import BackgroundWriter
from imdb_sentiment.errors import PipelineError
from imdb_sentiment.labels import POSITIVE, Label
from imdb_sentiment.runtime.records import PredictionRecord
from imdb_sentiment.store.engine import make_engine
from imdb_sentiment.store.schema import MIGRATIONS, SchemaState, inspect_schema
from imdb_sentiment.store.settings import Timeouts
from imdb_sentiment.store.tables import feedback, predictions

log = logging.getLogger(__name__)
# A prediction reaches the database up to the writer's linger (50 ms) plus a transaction after
# its response; feedback that races it (a script posting at once, to another replica) waits this
# long before the id is called unknown. Short on purpose: each wait holds a sync worker.
LOOKUP_PATIENCE_S = 0.2
PRUNE_EVERY_S = 300.0
SCHEMA_RECHECK_S = 10.0  # while unusable; six times that once usable


class StoreUnavailableError(PipelineError):
    """The database cannot be reached or refused the statement (not the caller's fault)."""


class UnknownPredictionError(LookupError):
    pass


class DuplicateFeedbackError(ValueError):
    pass


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


class SchemaError(StoreUnavailableError):
    """The database's schema is not one this release can use (store.schema)."""


def upgrade(url: str, timeouts: Timeouts | None = None) -> SchemaState:
    """Bring the schema to this release's newest revision, once per release (the release step;
    the server itself only for DATABASE_MIGRATE=auto). A newer schema this release does not know
    is left alone when it is compatible (a rollback meeting the next release's schema), and a
    `SchemaError` when it is not; never alembic's "Can't locate revision"."""
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    engine = make_engine(url, timeouts or Timeouts(statement_s=600.0, lock_s=5.0), pool_size=1)
    try:
        with engine.connect() as connection:
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
        raise StoreUnavailableError(f"cannot migrate the prediction store: {_reason(exc)}") from exc
    finally:
        engine.dispose()
    return state


def schema_state(engine: Engine) -> SchemaState:
    """The schema this engine's database holds, judged by this release (reads only)."""
    try:
        with engine.connect() as connection:
            return inspect_schema(connection)
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailableError(_reason(exc)) from exc


def open_store(url: str) -> PredictionStore:
    """An existing store to read from (CLI): one line if it is missing, unmigrated or down."""
    from sqlalchemy import inspect

    if not url:
        raise StoreUnavailableError("no prediction store: DATABASE_URL is empty")
    shown = make_url(url).render_as_string(hide_password=True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").exists():
        raise StoreUnavailableError(f"no prediction store at {shown} (DATABASE_URL)")
    store = PredictionStore(url)
    try:
        with store.engine.connect() as db:
            tables = set(inspect(db).get_table_names())
    except SQLAlchemyError as exc:
        raise StoreUnavailableError(
            f"cannot reach the prediction store {shown}: {_reason(exc)}"
        ) from exc
    if not {"predictions", "feedback"} <= tables:
        raise StoreUnavailableError(
            f"the prediction store {shown} has no schema: run `imdb-sentiment db upgrade`"
        )
    return store


def _reason(exc: BaseException) -> str:
    """The driver's message, first line, without SQLAlchemy's statement and link."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__


class PredictionStore:
    def __init__(
        self,
        url: str,
        keep_text: bool = False,
        retention_hours: float = 168.0,
        queue_max: int = 10_000,
        on_drop: Callable[[int, str], None] | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.url = url
        self.keep_text = keep_text
        self.retention_s = retention_hours * 3600
        self.timeouts = timeouts or Timeouts()
        self._on_drop = on_drop or (lambda n, reason: None)
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self._last_prune = 0.0
        self._writer = BackgroundWriter(
            lambda: _Sink(self), "prediction-store", max_queue=queue_max, on_drop=self._on_drop
        )
        self._schema: SchemaState | None = None
        self._looked = False  # a first look was made (whatever it found)
        self._watcher: tuple[int, threading.Thread] | None = None

    @property
    def engine(self) -> Engine:
        # Created in the process that uses it (gunicorn forks workers after the app may exist).
        with self._engine_lock:
            if self._engine is None:
                self._engine = make_engine(self.url, self.timeouts)
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

    def watch_schema(
        self, every_s: float = SCHEMA_RECHECK_S, known: SchemaState | None = None
    ) -> None:
        """Judge the schema now and then in the background (once per process): a pod that met
        a schema it cannot use becomes ready by itself once the release step has migrated.
        `known`: the verdict of a migration this process just ran."""
        pid = os.getpid()
        if self._watcher is not None and self._watcher[0] == pid:
            return
        if known is not None:
            self._schema, self._looked = known, True

        def watch() -> None:
            while True:
                state = self.check_schema()
                time.sleep(every_s if state is None or not state.usable else 6 * every_s)

        thread = threading.Thread(target=watch, name="prediction-store-schema", daemon=True)
        thread.start()
        self._watcher = (pid, thread)

    def unusable_reason(self) -> str | None:
        """Why this process cannot use the store, for readiness; None: usable, or not known to
        be unusable (a database that is down does not make the service unready: predictions
        are still answered)."""
        state = self._schema
        if state is None and self._watcher is not None and not self._looked:
            return "prediction store schema not checked yet"
        if state is None or state.usable:
            return None
        return f"prediction store schema {state.status}: {state.detail}"

    # --- the prediction path: queue only ------------------------------------------------------
    def remember(self, record: PredictionRecord) -> None:
        """Queue a record; its text must already be None unless texts are kept."""
        assert record.text is None or self.keep_text, "texts are not kept on this server"
        self._writer.put(record)

    def close(self) -> None:
        """Write everything queued, then stop the writer. Idempotent."""
        self._writer.close()

    def write(self, records: list[PredictionRecord]) -> None:
        rows = [_row(r) for r in records]
        try:
            with self.engine.begin() as db:
                db.execute(self._insert_ignoring_duplicates(), rows)
        except (SQLAlchemyError, OSError) as exc:
            # Dropped and counted; the next batch tries again (pool_pre_ping reconnects).
            log.warning(
                "prediction store unavailable: %d record(s) dropped (%s)", len(rows), _reason(exc)
            )
            self._on_drop(len(rows), "store_unavailable")
            return
        if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
            self._last_prune = time.monotonic()
            try:
                self.prune()
            except (SQLAlchemyError, OSError) as exc:  # retried at the next interval
                log.warning("prediction store: retention delete failed (%s)", _reason(exc))

    def _insert_ignoring_duplicates(self) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(predictions).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(predictions).on_conflict_do_nothing()

    def prune(self, now: float | None = None) -> int:
        """Delete unlabelled predictions older than the retention window."""
        cutoff = (now if now is not None else time.time()) - self.retention_s
        labelled = exists().where(
            and_(feedback.c.request_id == predictions.c.request_id,
                 feedback.c.item == predictions.c.item)
        )  # fmt: skip
        with self.engine.begin() as db:
            result = db.execute(
                delete(predictions).where(predictions.c.created < cutoff).where(~labelled)
            )
        return int(result.rowcount or 0)

    # --- the feedback path ----------------------------------------------------------------------
    def lookup(self, request_id: str, item: int) -> PredictionRecord:
        deadline = time.monotonic() + LOOKUP_PATIENCE_S
        query = select(predictions).where(
            predictions.c.request_id == request_id, predictions.c.item == item
        )
        while True:
            try:
                with self.engine.connect() as db:
                    row = db.execute(query).mappings().first()
            except (SQLAlchemyError, OSError) as exc:
                raise StoreUnavailableError(_reason(exc)) from exc
            if row is not None:
                return _record(row)
            if time.monotonic() > deadline:
                raise UnknownPredictionError(request_id)
            time.sleep(0.02)

    def label(self, record: PredictionRecord, actual: Label, text: str | None = None) -> Labelled:
        """Record the true label of a prediction, once. With `text`, the prediction was made for
        this feedback request and is stored with it; the text is labelled once (by its digest,
        whether or not the text itself is kept)."""
        digest = text_digest(text) if text is not None else None
        try:
            with self.engine.begin() as db:
                if text is not None:
                    db.execute(predictions.insert(), [_row(record)])
                db.execute(
                    feedback.insert(),
                    [{"request_id": record.request_id, "item": record.item,
                      "created": time.time(), "actual": actual, "text_sha256": digest}],
                )  # fmt: skip
        except IntegrityError as exc:
            raise DuplicateFeedbackError(record.request_id) from exc
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailableError(_reason(exc)) from exc
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
                    yield _record(row)
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(_reason(exc)) from exc

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
                    yield _record(row), row["actual"], float(row["labelled_at"])
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(_reason(exc)) from exc


class _Sink:
    """The writer thread's end of the queue."""

    def __init__(self, store: PredictionStore) -> None:
        self.write = store.write

    def close(self) -> None:
        pass


def _window(query: Any, columns: Any, since: float | None, until: float | None,
            version: str | None) -> Any:  # fmt: skip
    if since is not None:
        query = query.where(columns.created >= since)
    if until is not None:
        query = query.where(columns.created < until)
    if version is not None:
        query = query.where(columns.model_version == version)
    return query


def _row(r: PredictionRecord) -> dict[str, Any]:
    return {
        "request_id": r.request_id,
        "item": r.item,
        "created": r.time,
        "model_version": r.model_version,
        "probability": r.probability,
        "label": r.label,
        "text": r.text,
        "unknown_share": r.unknown_share,
        "tokens": r.tokens,
        "text_chars": r.text_chars,
    }


def _record(row: Any) -> PredictionRecord:
    return PredictionRecord(
        time=float(row["created"]),
        request_id=row["request_id"],
        item=int(row["item"]),
        model_version=row["model_version"],
        probability=float(row["probability"]),
        label=row["label"],
        unknown_share=float("nan") if row["unknown_share"] is None else row["unknown_share"],
        tokens=-1 if row["tokens"] is None else int(row["tokens"]),
        text_chars=-1 if row["text_chars"] is None else int(row["text_chars"]),
        text=row["text"],
    )

"""Retention: unlabelled predictions older than PREDICTION_RETENTION_HOURS are deleted, once per
PREDICTION_PRUNE_INTERVAL_S across every replica, in bounded batches.

The replica whose conditional update of `store_tasks.last_run` succeeds runs it (a short
transaction of its own). It then deletes in batches of RETENTION_BATCH, oldest first (the
`created` index), each batch its own transaction under the retention statement timeout
(DATABASE_RETENTION_STATEMENT_TIMEOUT_S, not the serving one), until a batch is not full or
the run's time budget is spent. A run that stopped with more to delete is "behind": logged,
reported (`on_run`: a metric, alert PredictionRetentionBehind) and continued at the next
interval, which any replica may take.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import and_, delete, exists, select, text, tuple_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from imdb_sentiment.store.tables import feedback, predictions, store_tasks

log = logging.getLogger("imdb_sentiment.store.database")
RETENTION_BATCH = 10_000  # rows per delete transaction


@dataclass(frozen=True)
class RetentionRun:
    at: float  # UNIX time the run started
    deleted: int
    seconds: float
    behind: bool  # it stopped at its time budget with more to delete


class HasEngine(Protocol):
    """What retention needs of the store (store.database.PredictionStore): its engine."""

    @property
    def engine(self) -> Engine: ...


class Retention:
    def __init__(self, store: HasEngine, retention_s: float, interval_s: float,
                 statement_s: float, budget_s: float | None = None) -> None:  # fmt: skip
        self.store = store
        self.retention_s = retention_s
        self.interval_s = interval_s
        self.statement_s = statement_s
        # A run takes at most half the interval: the next one starts on time.
        self.budget_s = budget_s if budget_s is not None else max(5.0, interval_s / 2)
        self.on_run: Callable[[RetentionRun], None] | None = None
        self.last: RetentionRun | None = None

    def run_if_due(self, now: float | None = None) -> int | None:
        """Run retention if no replica has in the last interval; None: not this replica's
        turn."""
        now = now if now is not None else time.time()
        claim = (
            update(store_tasks)
            .where(store_tasks.c.task == "prune")
            .where(store_tasks.c.last_run < now - self.interval_s)
            .values(last_run=now)
        )
        with self.store.engine.begin() as db:
            if not db.execute(claim).rowcount:
                return None
        return self.run(now)

    def run(self, now: float | None = None) -> int:
        """Delete what is past the retention window, in batches, within the time budget."""
        now = now if now is not None else time.time()
        started = time.monotonic()
        deleted, behind = 0, False
        while True:
            try:
                count = self._batch(now - self.retention_s)
            except SQLAlchemyError as exc:  # its own timeout, or the database went away
                log.warning(
                    "retention stopped after %d predictions deleted: %s",
                    deleted,
                    str(getattr(exc, "orig", None) or exc).strip().splitlines()[0],
                )
                behind = True
                break
            deleted += count
            if count < RETENTION_BATCH:
                break
            if time.monotonic() - started > self.budget_s:
                behind = True
                break
        run = RetentionRun(now, deleted, time.monotonic() - started, behind)
        self.last = run
        if behind:
            log.warning("retention behind: %d predictions deleted in %.0f s, more are past "
                        "the retention window (continued next interval)", deleted,
                        run.seconds)  # fmt: skip
        elif deleted:
            log.info("retention: %d predictions deleted in %.1f s", deleted, run.seconds)
        if self.on_run is not None:
            self.on_run(run)
        return deleted

    def _batch(self, cutoff: float) -> int:
        """One transaction: the oldest RETENTION_BATCH unlabelled predictions before `cutoff`."""
        old = predictions.alias("old")  # the subquery's own: not correlated with the DELETE
        labelled = exists().where(
            and_(feedback.c.request_id == old.c.request_id, feedback.c.item == old.c.item)
        )
        oldest = (
            select(old.c.request_id, old.c.item)
            .where(old.c.created < cutoff)
            .where(~labelled)
            .order_by(old.c.created)
            .limit(RETENTION_BATCH)
        )
        keys = tuple_(predictions.c.request_id, predictions.c.item)
        with self.store.engine.begin() as db:
            self._own_timeout(db)
            return int(db.execute(delete(predictions).where(keys.in_(oldest))).rowcount or 0)

    def _own_timeout(self, db: Any) -> None:
        if db.dialect.name == "postgresql":  # SET takes no parameters: a number, formatted
            db.execute(text(f"SET LOCAL statement_timeout = {round(self.statement_s * 1000)}"))

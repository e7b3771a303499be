"""One spool file: an SQLite database of one process's waiting requests (`SpoolFile`: a row per
request), its budget of the directory's bound, and the SQL every spool file answers. The
previous release's files have the same table (their bodies are arrays of objects, which
`records.decode_request` reads); they are only read, drained and removed (`store.spool`)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imdb_sentiment.store.records import decode_request

INSERT = "INSERT INTO requests (created, request_id, records, size, body) VALUES (?, ?, ?, ?, ?)"
LEDGER = ("written", "dropped_full", "dropped_expired", "dropped_unavailable", "quarantined")
PAGE = 4096
SHM_BYTES = 32768  # a WAL database's -shm file while it is open


@dataclass(frozen=True)
class Budget:
    """How one file spends its share of the directory's bound: at most a quarter on its WAL
    (checkpointed every `wal_pages`, a flush taking at most `batch_bytes`), the rest on the
    database itself (`db_pages`, enforced by SQLite)."""

    db_pages: int
    wal_pages: int
    batch_bytes: int

    @classmethod
    def of(cls, share: int) -> Budget:
        wal = share // 4
        db = share - wal - SHM_BYTES - 2 * PAGE
        return cls(max(1, db // PAGE), max(4, wal // 2 // PAGE), max(PAGE, wal // 4))


@dataclass(frozen=True)
class Taken:
    """The oldest waiting requests of one file: their keys (for `Spool.ack`) and bodies."""

    seqs: list[int]
    bodies: list[str]  # per request, its records: `encode_request`'s object (or a v2 array)
    records: int
    more: bool  # requests past the limit are waiting
    source: Any = field(default=None, compare=False, repr=False)  # the `SpoolFile` taken from

    def rows(self) -> list[dict[str, Any]]:
        """Every record, in order, parsed into a dict by field: one parse for the batch (the
        list of the bodies is one JSON text too)."""
        return [row for request in json.loads("[" + ",".join(self.bodies) + "]")
                for row in decode_request(request)]  # fmt: skip


class SpoolError(OSError):
    """The spool cannot be read or written (its disk is full or gone)."""


class SpoolFile:
    """One spool file: its connection (shared by the owner's threads under a lock), what it
    holds (kept in memory by its owner), and, for this format, its quarantine."""

    def __init__(self, path: Path, busy_timeout_s: float, budget: Budget | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None,
                                  check_same_thread=False)  # fmt: skip
        self.db.execute("PRAGMA journal_mode=WAL")
        # Durable against a killed process (the OS has every committed page), which is what the
        # spool is for: a power cut or a lost node takes the pod's emptyDir anyway. No fsync,
        # then, not even at WAL checkpoints: none on the request path.
        self.db.execute("PRAGMA synchronous=OFF")
        _create(self.db)
        self.budget = budget
        if budget is not None:  # a file this process writes: its share of the bound
            pages = self.db.execute("PRAGMA page_count").fetchone()[0]
            self.db.execute(f"PRAGMA max_page_count = {max(pages, budget.db_pages)}")
            self.db.execute(f"PRAGMA wal_autocheckpoint = {budget.wal_pages}")
            self.db.execute(f"PRAGMA journal_size_limit = {budget.wal_pages * PAGE}")
        self.records, self.bytes = self.db.execute(TOTALS).fetchone()
        self.published: tuple[int, int, float | None] | None = None

    # --- reading the oldest requests ------------------------------------------------------
    def take(self, limit: int, max_bytes: int) -> Taken:
        seqs: list[int] = []
        bodies: list[str] = []
        count, size, more = 0, 0, False
        with self.lock:
            cursor = self.db.execute(TAKE)
            try:
                for seq, records, body in cursor:
                    if seqs and (count + records > limit or size + len(body) > max_bytes):
                        more = True
                        break
                    seqs.append(seq)
                    bodies.append(body)
                    count, size = count + records, size + len(body)
            finally:
                cursor.close()
        return Taken(seqs, bodies, count, more, self)

    def oldest(self) -> float | None:
        """The oldest waiting request's time: the first row in key order (no scan)."""
        with self.lock:
            row = self.db.execute("SELECT created FROM requests ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    # --- removing what was written, expired or refused -------------------------------------
    def ack(self, seqs: list[int]) -> None:
        with self.lock, transaction(self.db):
            size, count = _remove(self.db, seqs)
            add_to_ledger(self.db, written=count)
            self.bytes, self.records = self.bytes - size, self.records - count
        self.checkpoint()

    def checkpoint(self) -> None:
        """Copy the WAL into the database without waiting for readers; the WAL restarts (and is
        cut to `journal_size_limit`) once a checkpoint completed."""
        with self.lock, contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def expire(self, cutoff: float) -> int:
        """Drop requests older than `cutoff`, oldest first (rows are in time order: the
        primary key's, no scan), and quarantined ones past it."""
        with self.lock, transaction(self.db):
            seqs: list[int] = []
            cursor = self.db.execute("SELECT seq, created FROM requests ORDER BY seq")
            try:
                for seq, created in cursor:
                    if created >= cutoff:
                        break
                    seqs.append(seq)
            finally:
                cursor.close()
            size, count = _remove(self.db, seqs)
            add_to_ledger(self.db, dropped_expired=count)
            self.bytes, self.records = self.bytes - size, self.records - count
            self.db.execute("DELETE FROM quarantine WHERE created < ?", (cutoff,))
        return count

    def quarantine(self, seq: int, reason: str, into: SpoolFile) -> None:
        """Move one request the database refuses for good into `into`'s quarantine."""
        with self.lock:
            row = self.db.execute("SELECT created, request_id, records, size, body FROM "
                                  "requests WHERE seq = ?", (seq,)).fetchone()  # fmt: skip
        if row is None:
            return
        created, request_id, records, size, body = row
        aside = (created, request_id, records, size, body, reason, time.time())
        with self.lock, transaction(self.db):
            # Its own file: in the same transaction (the request is in one place or the other).
            if into is self:
                _set_aside(self.db, aside)
            _remove(self.db, [seq])
            self.bytes, self.records = self.bytes - size, self.records - records
        if into is not self:  # an orphan's: kept here first, so a crash between keeps it twice
            with into.lock, transaction(into.db):
                _set_aside(into.db, aside)

    # --- what others read -----------------------------------------------------------------
    def publish(self) -> None:
        """Write this file's totals to its `totals` row when they changed."""
        now = (self.records, self.bytes, self.oldest() if self.records else None)
        if now == self.published:
            return
        with self.lock, transaction(self.db):
            self.db.execute("INSERT OR REPLACE INTO totals (id, records, bytes, oldest) "
                            "VALUES (0, ?, ?, ?)", now)  # fmt: skip
        self.published = now

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.publish()
        self.db.close()


TAKE = "SELECT seq, records, body FROM requests ORDER BY seq"
# Records and bytes waiting in a file; with the oldest time for a file whose owner is gone (its
# published totals may predate its last records) or that publishes none (the previous release).
TOTALS = "SELECT COALESCE(SUM(records), 0), COALESCE(SUM(size), 0) FROM requests"
TOTALS_OLDEST = (
    "SELECT COALESCE(SUM(records), 0), COALESCE(SUM(size), 0), MIN(created) FROM requests"
)


def _create(db: sqlite3.Connection) -> None:
    with transaction(db):
        db.execute("CREATE TABLE IF NOT EXISTS requests (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                   "created REAL NOT NULL, request_id TEXT, records INTEGER NOT NULL, "
                   "size INTEGER NOT NULL, body TEXT NOT NULL)")  # fmt: skip
        db.execute("CREATE INDEX IF NOT EXISTS requests_request ON requests (request_id)")
        db.execute("CREATE TABLE IF NOT EXISTS ledger (name TEXT PRIMARY KEY, "
                   "value INTEGER NOT NULL)")  # fmt: skip
        db.executemany("INSERT OR IGNORE INTO ledger VALUES (?, 0)", [(n,) for n in LEDGER])
        db.execute("CREATE TABLE IF NOT EXISTS quarantine (created REAL NOT NULL, "
                   "request_id TEXT, records INTEGER NOT NULL, size INTEGER NOT NULL, "
                   "body TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL)")  # fmt: skip
        db.execute("CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY, records INTEGER, "
                   "bytes INTEGER, oldest REAL)")  # fmt: skip


def _set_aside(db: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    db.execute("INSERT INTO quarantine (created, request_id, records, size, body, reason, at) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)", row)  # fmt: skip
    add_to_ledger(db, quarantined=row[2])


def is_spool(path: Path) -> bool:
    with contextlib.suppress(sqlite3.Error), reader(path) as db:
        return is_spool_db(tables_of(db))
    return False


@contextlib.contextmanager
def reader(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    try:
        yield db
    finally:
        db.close()


def _remove(db: sqlite3.Connection, seqs: list[int]) -> tuple[int, int]:
    """Delete these requests; their bytes and records."""
    size = count = 0
    for start in range(0, len(seqs), 500):  # SQLite's bound-parameter limit
        chunk = seqs[start : start + 500]
        marks = ",".join("?" * len(chunk))
        part, number = db.execute(
            f"SELECT COALESCE(SUM(size), 0), COALESCE(SUM(records), 0) FROM requests "
            f"WHERE seq IN ({marks})",
            chunk,
        ).fetchone()
        db.execute(f"DELETE FROM requests WHERE seq IN ({marks})", chunk)
        size, count = size + part, count + number
    return size, count


def tables_of(db: sqlite3.Connection, schema: str = "main") -> set[str]:
    query = f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'"
    return {name for (name,) in db.execute(query)}


def is_spool_db(tables: set[str]) -> bool:
    """A spool file's tables (this format's or the previous release's); not yet, while the
    process that made the file is creating them."""
    return {"ledger", "requests"} <= tables


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error): the write lock is taken at once."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def add_to_ledger(db: sqlite3.Connection, **amounts: int) -> None:
    db.executemany("UPDATE ledger SET value = value + ? WHERE name = ?",
                   [(v, k) for k, v in amounts.items() if v])  # fmt: skip

"""The spool: a bounded, durable, local queue of prediction records between a pod and the shared
database, in one SQLite file on the pod's volume (`PREDICTION_SPOOL_DIR`) that every worker of
the pod shares.

A prediction's records are in the spool before its response is sent: a worker killed right
after answering, a database that is slow or away for minutes, a pod restarted meanwhile — the
records wait here and are written to the database, oldest first, when it is back
(`store.database`: one flusher per pod at a time, holding `flush.lock`). A record leaves the
spool only once the database has committed it, and the database ignores a record it already has
(its key is the server's unique id), so a record is stored exactly once even if a flusher dies
between the two. Only what exceeds the bounds is dropped: records that would take the spool past
`max_bytes`, and records older than `max_age_s` (the database was away longer than anyone reads
them for). What was dropped is counted in the spool's own ledger, which survives restarts as the
spool does.

Imports: the standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = "spool.db"
LOCK = "flush.lock"
LEDGER = ("spooled", "written", "dropped_full", "dropped_expired", "dropped_unavailable")


@dataclass(frozen=True)
class SpoolState:
    records: int
    bytes: int
    oldest: float | None  # UNIX time of the oldest record waiting
    ledger: dict[str, int]

    def as_json(self, now: float | None = None) -> dict[str, Any]:
        age = None if self.oldest is None else round((now or time.time()) - self.oldest, 3)
        dropped = {k.removeprefix("dropped_"): v for k, v in self.ledger.items() if "dropped" in k}
        return {"records": self.records, "bytes": self.bytes, "oldest_age_s": age,
                "written": self.ledger["written"], "dropped": dropped}  # fmt: skip


class SpoolError(OSError):
    """The spool cannot be read or written (its disk is full or gone)."""


class Spool:
    def __init__(self, directory: str | Path, max_bytes: int, max_age_s: float,
                 busy_timeout_s: float = 5.0) -> None:  # fmt: skip
        self.directory = Path(directory).absolute()  # where it is now, whatever cwd becomes
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._lock_file: int | None = None
        self._lock_pid = 0

    # --- connections ----------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        """One connection per thread and process (a forked worker opens its own)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            self.directory.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.directory / FILE, timeout=self.busy_timeout_s,
                                 isolation_level=None, check_same_thread=False)  # fmt: skip
            db.execute("PRAGMA journal_mode=WAL")
            # Durable against a killed process (the OS has every committed page), not a power
            # cut: what the request path can afford on every response.
            db.execute("PRAGMA synchronous=NORMAL")
            with _transaction(db):
                db.execute("CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY "
                           "AUTOINCREMENT, created REAL NOT NULL, request_id TEXT, "
                           "size INTEGER NOT NULL, body TEXT NOT NULL)")  # fmt: skip
                db.execute("CREATE INDEX IF NOT EXISTS records_request ON records (request_id)")
                db.execute("CREATE TABLE IF NOT EXISTS ledger (name TEXT PRIMARY KEY, "
                           "value INTEGER NOT NULL)")  # fmt: skip
                db.executemany("INSERT OR IGNORE INTO ledger VALUES (?, 0)",
                               [(n,) for n in (*LEDGER, "bytes")])  # fmt: skip
            local.db, local.pid = db, os.getpid()
        return local.db

    # --- the request path -----------------------------------------------------------------
    def append(self, rows: list[dict[str, Any]]) -> int:
        """Keep `rows` (one request's records) durably; returns how many were kept. Past the
        size bound the request's records are dropped and counted, never half of them."""
        bodies = [json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in rows]
        size = sum(len(b) for b in bodies)
        try:
            db = self._db()
            with _transaction(db):
                (used,) = db.execute("SELECT value FROM ledger WHERE name = 'bytes'").fetchone()
                if used + size > self.max_bytes:
                    _add(db, dropped_full=len(rows))
                    return 0
                db.executemany(
                    "INSERT INTO records (created, request_id, size, body) VALUES (?, ?, ?, ?)",
                    [(r["created"], r["request_id"], len(b), b) for r, b in zip(rows, bodies,
                                                                                strict=True)],
                )  # fmt: skip
                _add(db, spooled=len(rows), bytes=size)
        except sqlite3.Error as exc:
            raise SpoolError(f"prediction spool {self.directory}: {exc}") from exc
        return len(rows)

    def count_unavailable(self, count: int) -> None:
        """Records that could not even reach the spool (its disk failed): counted if possible."""
        with contextlib.suppress(sqlite3.Error, OSError), _transaction(self._db()) as db:
            _add(db, dropped_unavailable=count)

    # --- the flusher ----------------------------------------------------------------------
    def take(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """The oldest waiting records, in order (not removed: `ack` does that)."""
        found = (
            self._db()
            .execute("SELECT seq, body FROM records ORDER BY seq LIMIT ?", (limit,))
            .fetchall()
        )
        return [(seq, json.loads(body)) for seq, body in found]

    def ack(self, seqs: list[int]) -> None:
        """These records are in the database: remove them."""
        db = self._db()
        with _transaction(db):
            size, count = self._remove(db, seqs)
            _add(db, written=count, bytes=-size)

    def expire(self, now: float | None = None) -> int:
        """Drop records older than the age bound; returns how many."""
        cutoff = (now if now is not None else time.time()) - self.max_age_s
        db = self._db()
        with _transaction(db):
            seqs = [s for (s,) in db.execute("SELECT seq FROM records WHERE created < ?",
                                             (cutoff,))]  # fmt: skip
            size, count = self._remove(db, seqs)
            _add(db, dropped_expired=count, bytes=-size)
        return count

    @staticmethod
    def _remove(db: sqlite3.Connection, seqs: list[int]) -> tuple[int, int]:
        size = count = 0
        for start in range(0, len(seqs), 500):  # SQLite's bound-parameter limit
            chunk = seqs[start : start + 500]
            marks = ",".join("?" * len(chunk))
            (part,) = db.execute(
                f"SELECT COALESCE(SUM(size), 0) FROM records WHERE seq IN ({marks})", chunk
            ).fetchone()
            size += part
            count += db.execute(f"DELETE FROM records WHERE seq IN ({marks})", chunk).rowcount
        return size, count

    def holds(self, request_id: str) -> bool:
        """A record of this request is still waiting here."""
        row = (
            self._db()
            .execute("SELECT 1 FROM records WHERE request_id = ? LIMIT 1", (request_id,))
            .fetchone()
        )
        return row is not None

    def state(self) -> SpoolState:
        db = self._db()
        records, oldest = db.execute("SELECT COUNT(*), MIN(created) FROM records").fetchone()
        ledger = dict(db.execute("SELECT name, value FROM ledger").fetchall())
        size = ledger.pop("bytes")
        return SpoolState(records, size, oldest, ledger)

    # --- one flusher per pod --------------------------------------------------------------
    def try_flusher(self) -> bool:
        """Become the pod's flusher, or stay it; False when another process is. The kernel
        releases the lock with its process, so a killed flusher's role passes on."""
        if self._lock_file is not None and self._lock_pid == os.getpid():
            return True
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_file, self._lock_pid = fd, os.getpid()
        return True

    def release_flusher(self) -> None:
        if self._lock_file is not None and self._lock_pid == os.getpid():
            os.close(self._lock_file)  # closing the descriptor releases the lock
        self._lock_file = None


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error): the write lock is taken at once, so two
    writers never deadlock upgrading read locks."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _add(db: sqlite3.Connection, **amounts: int) -> None:
    db.executemany("UPDATE ledger SET value = value + ? WHERE name = ?",
                   [(v, k) for k, v in amounts.items() if v])  # fmt: skip

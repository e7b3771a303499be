"""The spool: a bounded, durable, local queue of prediction records between a pod and the shared
database, in SQLite files on the pod's volume (`PREDICTION_SPOOL_DIR`), one per process.

A prediction's records are in the spool before its response is sent: a worker killed right
after answering, a database that is slow or away for minutes, a pod restarted meanwhile — the
records wait here and are written to the database, oldest first, when it is back
(`store.flusher`). A record leaves the spool only once the database has committed it (or
refused it for good: then it is quarantined, see below), and the database ignores a record it
already has (its key is the server's unique id), so a record is stored exactly once even if a
process dies between the two.

**Files.** One per process, because the request path must not wait: a process's request
threads and its flusher share one connection under a lock. A process holds an exclusive `flock`
on its file's lock while it lives. A process that starts takes over a file whose lock is free
(its process is gone: a killed worker, the pod's previous run) as its own, records and ledger
included; only if there is none does it start a new file. So a pod has as many files as it has
processes, and a file never moves. Files nobody takes over (fewer processes than before, or the
previous release's format, `spool.v2-*`: a request as an array of objects) are written to the
database directly by a live process's flusher (`orphans`), then removed; their ledgers are
carried over. Older formats (`spool-*`, a row per record) are not read: they stay on the volume
for the release that reads them (CHANGELOG).

**Bodies.** A row per request, its records as one JSON object by column (`encode_request`): `k`
the fields that vary between the records, `c` the fields all of them share, `r` each record's
varying fields in `k`'s order. This release's files are `spool.v3-*`; the releases before never
glob them, so a rollback leaves them for the next release.

**Bounds.** `max_bytes` bounds the whole directory as the kubelet measures an emptyDir (bytes on
disk, every file: the databases, their write-ahead logs and shared memory), split evenly among
the pod's `processes`: each file is capped by SQLite itself (`max_page_count`), its WAL is
checkpointed every few pages and truncated (`journal_size_limit`), and a flush takes at most a
few of those pages. A request that does not fit is dropped whole and counted; records older than
`max_age_s` are dropped and counted. What was dropped is in the files' ledgers, which survive
restarts as the files do.

**Quarantine.** A request the database refuses for good (a value it cannot store, a constraint)
moves to the file's `quarantine` table with the reason, counted (`quarantined`); it never
blocks the records behind it. It stays on the volume for a person to look at
(docs/operations.md) until the age bound drops it.

**State.** Each owner keeps its file's totals in memory and publishes them to the file's
`totals` row now and then (`publish`): the pod's state (`state`, for /readyz and /metrics)
reads one row per file, never the records.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imdb_sentiment.store.records import by_request, encode_request
from imdb_sentiment.store.spool_file import (
    INSERT,
    LEDGER,
    TOTALS_OLDEST,
    Budget,
    SpoolError,
    SpoolFile,
    Taken,
    add_to_ledger,
    is_spool,
    is_spool_db,
    reader,
    tables_of,
    transaction,
)

PREFIX = "spool.v3-"  # a row per request, its records by column (this format)
# The previous release's, written out when found, never written to: a row per request as an
# array of objects (their table is this format's).
ADOPTED_PREFIXES = ("spool.v2-",)
# Numbers the spools one process opens: each has a file of its own, so two stores in one
# process (an app built twice, a test) never wait on each other's claim.
_SERIAL = itertools.count()


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
                "written": self.ledger["written"], "dropped": dropped,
                "quarantined": self.ledger["quarantined"]}  # fmt: skip


class Spool:
    def __init__(self, directory: str | Path, max_bytes: int, max_age_s: float,
                 busy_timeout_s: float = 5.0, processes: int = 1) -> None:  # fmt: skip
        self.directory = Path(directory).absolute()  # where it is now, whatever cwd becomes
        self.max_bytes = max_bytes  # the whole directory's, every process's file included
        self.max_age_s = max_age_s
        self.busy_timeout_s = busy_timeout_s
        self.processes = max(1, processes)
        self.budget = Budget.of(max_bytes // self.processes)
        self._file: SpoolFile | None = None
        self._pid = 0
        self._name = ""
        self._lock_fd: int | None = None
        self._open_lock = threading.Lock()
        self._state: tuple[float, SpoolState] | None = None  # (when, what): for probes

    # --- this process's file --------------------------------------------------------------
    def _mine(self) -> SpoolFile:
        """This process's file: on first use, a gone process's file taken over, else a new one
        (a forked child opens its own)."""
        if self._file is not None and self._pid == os.getpid():
            return self._file
        with self._open_lock:
            if self._file is None or self._pid != os.getpid():
                self.directory.mkdir(parents=True, exist_ok=True)
                name, fd = self._take_over() or self._new()
                self._lock_fd, self._pid, self._name = fd, os.getpid(), name
                self._file = SpoolFile(self.directory / f"{name}.db", self.busy_timeout_s,
                                   self.budget)  # fmt: skip
        return self._file

    def _take_over(self) -> tuple[str, int] | None:
        for lock in sorted(self.directory.glob(f"{PREFIX}*.lock")):
            fd = _claim(lock, wait=False)
            if fd is not None:
                return lock.stem, fd
        return None

    def _new(self) -> tuple[str, int]:
        name = f"{PREFIX}{os.getpid()}-{next(_SERIAL)}"
        fd = _claim(self.directory / f"{name}.lock", wait=True)
        assert fd is not None
        return name, fd

    # --- the request path -----------------------------------------------------------------
    def append(self, rows: list[dict[str, Any]]) -> int:
        """Keep `rows` (one request's records) durably; returns how many were kept. Past the
        bound the request's records are dropped and counted, never half of them."""
        values = [(min(r["created"] for r in group), request_id, len(group), len(body), body)
                  for request_id, group in by_request(rows)
                  for body in (encode_request(group),)]  # fmt: skip
        size = sum(v[3] for v in values)
        try:
            spool = self._mine()
            with spool.lock:
                try:
                    if len(values) == 1:  # its own implicit transaction: one statement
                        spool.db.execute(INSERT, values[0])
                    else:
                        with transaction(spool.db):
                            spool.db.executemany(INSERT, values)
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode != sqlite3.SQLITE_FULL:
                        raise
                    with transaction(spool.db):  # its share is full: counted, not kept
                        add_to_ledger(spool.db, dropped_full=len(rows))
                    return 0
                spool.bytes, spool.records = spool.bytes + size, spool.records + len(rows)
        except sqlite3.Error as exc:
            raise SpoolError(f"prediction spool {self.directory}: {exc}") from exc
        return len(rows)

    def count_unavailable(self, count: int) -> None:
        """Records that could not even reach the spool (its disk failed): counted if possible."""
        with contextlib.suppress(sqlite3.Error, OSError):
            spool = self._mine()
            with spool.lock, transaction(spool.db):
                add_to_ledger(spool.db, dropped_unavailable=count)

    # --- the flusher ----------------------------------------------------------------------
    def take(self, limit: int) -> Taken:
        """This process's oldest waiting requests, in order, up to `limit` records and the
        budget's bytes (at least one request, whatever its size); `ack` removes them."""
        return self._mine().take(limit, self.budget.batch_bytes)

    def ack(self, taken: Taken, seqs: list[int] | None = None) -> None:
        """These requests (all of `taken`'s by default) are in the database: remove them."""
        source: SpoolFile = taken.source or self._mine()
        source.ack(taken.seqs if seqs is None else seqs)

    def quarantine(self, taken: Taken, seq: int, reason: str) -> None:
        """The database refuses this request for good: aside, into this process's quarantine."""
        source: SpoolFile = taken.source or self._mine()
        source.quarantine(seq, reason[:2000], into=self._mine())

    def expire(self, now: float | None = None) -> int:
        """Drop this process's records older than the age bound; returns how many."""
        cutoff = (now if now is not None else time.time()) - self.max_age_s
        try:
            return self._mine().expire(cutoff)
        except sqlite3.Error as exc:
            raise SpoolError(f"prediction spool {self.directory}: {exc}") from exc

    def publish(self) -> None:
        """This process's totals, for the pod's readers (`state`)."""
        self._mine().publish()

    def orphans(self) -> Generator[Taken, None, None]:
        """The files of processes that are gone and that nobody took over, one batch at a time
        (the caller writes each batch and acks it, or stops when the database is away). A file
        that is empty afterwards is removed, its ledger carried over to this process's file."""
        mine = self._mine()
        locks = [lock for prefix in (*ADOPTED_PREFIXES[::-1], PREFIX)  # oldest format first
                 for lock in sorted(self.directory.glob(f"{prefix}*.lock"))]  # fmt: skip
        for lock in locks:
            if lock.stem == self._name:
                continue
            fd = _claim(lock, wait=False)
            if fd is None:
                continue  # its process is alive
            try:
                yield from self._drain(lock, mine)
            finally:
                os.close(fd)

    def _drain(self, lock: Path, mine: SpoolFile) -> Generator[Taken, None, None]:
        path = lock.with_suffix(".db")
        if path.exists():
            if not is_spool(path):
                return  # not (yet) a spool file
            orphan = SpoolFile(path, self.busy_timeout_s, None)
            try:
                previous: list[int] = []
                while True:
                    taken = orphan.take(FLUSH_LIMIT, self.budget.batch_bytes)
                    if not taken.seqs:
                        break
                    if taken.seqs == previous:
                        return  # the caller neither wrote nor set it aside: it waits
                    previous = taken.seqs
                    yield taken  # the caller stops iterating while the database is away
                self._carry_over(orphan, mine)
            finally:
                orphan.db.close()
        for suffix in (".db", ".db-wal", ".db-shm", ".lock"):
            lock.with_suffix(suffix).unlink(missing_ok=True)

    @staticmethod
    def _carry_over(orphan: SpoolFile, mine: SpoolFile) -> None:
        ledger = dict(orphan.db.execute("SELECT name, value FROM ledger"))
        with mine.lock, transaction(mine.db):
            add_to_ledger(mine.db, **{k: v for k, v in ledger.items() if k in LEDGER})
            if "quarantine" in tables_of(orphan.db):
                rows = orphan.db.execute("SELECT created, request_id, records, size, body, "
                                         "reason, at FROM quarantine").fetchall()  # fmt: skip
                mine.db.executemany(
                    "INSERT INTO quarantine (created, request_id, records, "
                    "size, body, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

    # --- reading (any process) ------------------------------------------------------------
    def _files(self) -> list[Path]:
        return sorted(path for prefix in (*ADOPTED_PREFIXES, PREFIX)
                      for path in self.directory.glob(f"{prefix}*.db"))  # fmt: skip

    def holds(self, request_id: str) -> bool:
        """A record of this request is still waiting here, in any process's file."""
        for path in self._files():
            with contextlib.suppress(sqlite3.Error), reader(path) as db:
                if (
                    is_spool_db(tables_of(db))
                    and db.execute(
                        "SELECT 1 FROM requests WHERE request_id = ? LIMIT 1", (request_id,)
                    ).fetchone()
                ):
                    return True
        return False

    def state(self, max_age_s: float = 0.0) -> SpoolState:
        """The whole pod's spool: this process's file from memory, every other file's published
        totals (one row each; an earlier release's file, which has none, is counted). A probe
        asking every few seconds may take an answer up to `max_age_s` old."""
        cached = self._state
        if max_age_s > 0 and cached is not None and time.monotonic() - cached[0] <= max_age_s:
            return cached[1]
        state = self._read_state()
        self._state = (time.monotonic(), state)
        return state

    def _read_state(self) -> SpoolState:
        records, size, oldest = 0, 0, None
        ledger = dict.fromkeys(LEDGER, 0)
        mine = self._mine()
        mine_path = mine.path
        mine_oldest = mine.oldest() if mine.records else None
        for path in self._files():
            with contextlib.suppress(sqlite3.Error), reader(path) as db:
                tables = tables_of(db)
                if not is_spool_db(tables):
                    continue
                if path == mine_path:
                    count, total, first = mine.records, mine.bytes, mine_oldest
                # A live owner's published totals; a gone one's may predate its last records.
                elif "totals" in tables and _owner_alive(path.with_suffix(".lock")) and (
                        row := db.execute("SELECT records, bytes, oldest FROM totals").fetchone()
                ):  # fmt: skip
                    count, total, first = row
                else:
                    count, total, first = db.execute(TOTALS_OLDEST).fetchone()
                for name, value in db.execute("SELECT name, value FROM ledger"):
                    ledger[name] = ledger.get(name, 0) + value
                records, size = records + count, size + total
                if first is not None:
                    oldest = first if oldest is None else min(oldest, first)
        return SpoolState(records, size, oldest, ledger)

    def close(self) -> None:
        """Close this process's file and give up its claim (a later process takes it over)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
        self._file = self._lock_fd = None


FLUSH_LIMIT = 1000  # records per batch from an orphan, as from a process's own file


def _claim(path: Path, wait: bool) -> int | None:
    """An exclusive flock on `path` (held until its descriptor is closed), or None if another
    process holds it and `wait` is false."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _owner_alive(lock: Path) -> bool:
    """Another process holds this spool file's lock (so its published totals are current)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's own lock, if it got one
    return False

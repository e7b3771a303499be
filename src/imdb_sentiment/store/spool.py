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
processes, and a file never moves. Files nobody takes over (fewer processes than before, or an
earlier release's formats: `spool-*` a row per record, `spool.v2-*` a request as an array of
objects) are written to the database directly by a live process's flusher (`orphans`), then
removed; their ledgers are carried over.

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
import json
import os
import sqlite3
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

PREFIX = "spool.v3-"  # a row per request, its records by column (this format)
# Releases before, written out when found, never written to: a row per request as an array of
# objects (their table is this format's), and a row per record.
ADOPTED_PREFIXES = ("spool.v2-", "spool-")
INSERT = "INSERT INTO requests (created, request_id, records, size, body) VALUES (?, ?, ?, ?, ?)"
LEDGER = ("written", "dropped_full", "dropped_expired", "dropped_unavailable", "quarantined")
PAGE = 4096
SHM_BYTES = 32768  # a WAL database's -shm file while it is open
# Numbers the spools one process opens: each has a file of its own, so two stores in one
# process (an app built twice, a test) never wait on each other's claim.
_SERIAL = itertools.count()


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
    source: Any = field(default=None, compare=False, repr=False)  # the `_File` taken from

    def rows(self) -> list[dict[str, Any]]:
        """Every record, in order, parsed into a dict by field: one parse for the batch (the
        list of the bodies is one JSON text too)."""
        return [row for request in json.loads("[" + ",".join(self.bodies) + "]")
                for row in decode_request(request)]  # fmt: skip


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


class SpoolError(OSError):
    """The spool cannot be read or written (its disk is full or gone)."""


class _File:
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
        self.table = _rows_table(_tables(self.db)) or "requests"
        if self.table == "requests":
            _create(self.db)
        self.budget = budget
        if budget is not None:  # a file this process writes: its share of the bound
            pages = self.db.execute("PRAGMA page_count").fetchone()[0]
            self.db.execute(f"PRAGMA max_page_count = {max(pages, budget.db_pages)}")
            self.db.execute(f"PRAGMA wal_autocheckpoint = {budget.wal_pages}")
            self.db.execute(f"PRAGMA journal_size_limit = {budget.wal_pages * PAGE}")
        self.records, self.bytes = self.db.execute(
            TOTALS[self.table].format(schema="")).fetchone()  # fmt: skip
        self.published: tuple[int, int, float | None] | None = None

    # --- reading the oldest requests ------------------------------------------------------
    def take(self, limit: int, max_bytes: int) -> Taken:
        seqs: list[int] = []
        bodies: list[str] = []
        count, size, more = 0, 0, False
        with self.lock:
            cursor = self.db.execute(TAKE[self.table])
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
            query = f"SELECT created FROM {self.table} ORDER BY seq LIMIT 1"
            row = self.db.execute(query).fetchone()
        return None if row is None else float(row[0])

    # --- removing what was written, expired or refused -------------------------------------
    def ack(self, seqs: list[int]) -> None:
        with self.lock, _transaction(self.db):
            size, count = _remove(self.db, self.table, seqs)
            _add(self.db, written=count)
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
        with self.lock, _transaction(self.db):
            seqs: list[int] = []
            cursor = self.db.execute(f"SELECT seq, created FROM {self.table} ORDER BY seq")
            try:
                for seq, created in cursor:
                    if created >= cutoff:
                        break
                    seqs.append(seq)
            finally:
                cursor.close()
            size, count = _remove(self.db, self.table, seqs)
            _add(self.db, dropped_expired=count)
            self.bytes, self.records = self.bytes - size, self.records - count
            if self.table == "requests":
                self.db.execute("DELETE FROM quarantine WHERE created < ?", (cutoff,))
        return count

    def quarantine(self, seq: int, reason: str, into: _File) -> None:
        """Move one request the database refuses for good into `into`'s quarantine."""
        with self.lock:
            row = self.db.execute(f"SELECT created, request_id, records, size, body FROM "
                                  f"{self.table} WHERE seq = ?", (seq,)).fetchone()  # fmt: skip
        if row is None:
            return
        created, request_id, records, size, body = row
        if self.table == "records":
            body = f"[{body}]"
        aside = (created, request_id, records, size, body, reason, time.time())
        with self.lock, _transaction(self.db):
            # Its own file: in the same transaction (the request is in one place or the other).
            if into is self:
                _set_aside(self.db, aside)
            _remove(self.db, self.table, [seq])
            self.bytes, self.records = self.bytes - size, self.records - records
        if into is not self:  # an orphan's: kept here first, so a crash between keeps it twice
            with into.lock, _transaction(into.db):
                _set_aside(into.db, aside)

    # --- what others read -----------------------------------------------------------------
    def publish(self) -> None:
        """Write this file's totals to its `totals` row when they changed."""
        if self.table != "requests":
            return
        now = (self.records, self.bytes, self.oldest() if self.records else None)
        if now == self.published:
            return
        with self.lock, _transaction(self.db):
            self.db.execute("INSERT OR REPLACE INTO totals (id, records, bytes, oldest) "
                            "VALUES (0, ?, ?, ?)", now)  # fmt: skip
        self.published = now

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.publish()
        self.db.close()


class Spool:
    def __init__(self, directory: str | Path, max_bytes: int, max_age_s: float,
                 busy_timeout_s: float = 5.0, processes: int = 1) -> None:  # fmt: skip
        self.directory = Path(directory).absolute()  # where it is now, whatever cwd becomes
        self.max_bytes = max_bytes  # the whole directory's, every process's file included
        self.max_age_s = max_age_s
        self.busy_timeout_s = busy_timeout_s
        self.processes = max(1, processes)
        self.budget = Budget.of(max_bytes // self.processes)
        self._file: _File | None = None
        self._pid = 0
        self._name = ""
        self._lock_fd: int | None = None
        self._open_lock = threading.Lock()
        self._state: tuple[float, SpoolState] | None = None  # (when, what): for probes

    # --- this process's file --------------------------------------------------------------
    def _mine(self) -> _File:
        """This process's file: on first use, a gone process's file taken over, else a new one
        (a forked child opens its own)."""
        if self._file is not None and self._pid == os.getpid():
            return self._file
        with self._open_lock:
            if self._file is None or self._pid != os.getpid():
                self.directory.mkdir(parents=True, exist_ok=True)
                name, fd = self._take_over() or self._new()
                self._lock_fd, self._pid, self._name = fd, os.getpid(), name
                self._file = _File(self.directory / f"{name}.db", self.busy_timeout_s,
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
                  for request_id, group in _by_request(rows)
                  for body in (encode_request(group),)]  # fmt: skip
        size = sum(v[3] for v in values)
        try:
            spool = self._mine()
            with spool.lock:
                try:
                    if len(values) == 1:  # its own implicit transaction: one statement
                        spool.db.execute(INSERT, values[0])
                    else:
                        with _transaction(spool.db):
                            spool.db.executemany(INSERT, values)
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode != sqlite3.SQLITE_FULL:
                        raise
                    with _transaction(spool.db):  # its share is full: counted, not kept
                        _add(spool.db, dropped_full=len(rows))
                    return 0
                spool.bytes, spool.records = spool.bytes + size, spool.records + len(rows)
        except sqlite3.Error as exc:
            raise SpoolError(f"prediction spool {self.directory}: {exc}") from exc
        return len(rows)

    def count_unavailable(self, count: int) -> None:
        """Records that could not even reach the spool (its disk failed): counted if possible."""
        with contextlib.suppress(sqlite3.Error, OSError):
            spool = self._mine()
            with spool.lock, _transaction(spool.db):
                _add(spool.db, dropped_unavailable=count)

    # --- the flusher ----------------------------------------------------------------------
    def take(self, limit: int) -> Taken:
        """This process's oldest waiting requests, in order, up to `limit` records and the
        budget's bytes (at least one request, whatever its size); `ack` removes them."""
        return self._mine().take(limit, self.budget.batch_bytes)

    def ack(self, taken: Taken, seqs: list[int] | None = None) -> None:
        """These requests (all of `taken`'s by default) are in the database: remove them."""
        source: _File = taken.source or self._mine()
        source.ack(taken.seqs if seqs is None else seqs)

    def quarantine(self, taken: Taken, seq: int, reason: str) -> None:
        """The database refuses this request for good: aside, into this process's quarantine."""
        source: _File = taken.source or self._mine()
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

    def _drain(self, lock: Path, mine: _File) -> Generator[Taken, None, None]:
        path = lock.with_suffix(".db")
        if path.exists():
            if not _is_spool(path):
                return  # not (yet) a spool file
            orphan = _File(path, self.busy_timeout_s, None)
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
    def _carry_over(orphan: _File, mine: _File) -> None:
        ledger = dict(orphan.db.execute("SELECT name, value FROM ledger"))
        with mine.lock, _transaction(mine.db):
            _add(mine.db, **{k: v for k, v in ledger.items() if k in LEDGER})
            if "quarantine" in _tables(orphan.db):
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
            with contextlib.suppress(sqlite3.Error), _reader(path) as db:
                table = _rows_table(_tables(db))
                if (
                    table is not None
                    and db.execute(
                        f"SELECT 1 FROM {table} WHERE request_id = ? LIMIT 1", (request_id,)
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
            with contextlib.suppress(sqlite3.Error), _reader(path) as db:
                tables = _tables(db)
                table = _rows_table(tables)
                if table is None:
                    continue
                if path == mine_path:
                    count, total, first = mine.records, mine.bytes, mine_oldest
                # A live owner's published totals; a gone one's may predate its last records.
                elif "totals" in tables and _owner_alive(path.with_suffix(".lock")) and (
                        row := db.execute("SELECT records, bytes, oldest FROM totals").fetchone()
                ):  # fmt: skip
                    count, total, first = row
                else:
                    count, total, first = db.execute(TOTALS_OLDEST[table]).fetchone()
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
TAKE = {
    "requests": "SELECT seq, records, body FROM requests ORDER BY seq",
    "records": "SELECT seq, 1, '[' || body || ']' FROM records ORDER BY seq",
}
# Records and bytes waiting in a file, by its format (its table); with the oldest time for the
# files of earlier releases, which publish no totals.
TOTALS = {
    "requests": "SELECT COALESCE(SUM(records), 0), COALESCE(SUM(size), 0) FROM {schema}requests",
    "records": "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM {schema}records",
}
TOTALS_OLDEST = {
    "requests": "SELECT COALESCE(SUM(records), 0), COALESCE(SUM(size), 0), MIN(created) "
    "FROM requests",
    "records": "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created) FROM records",
}


def _create(db: sqlite3.Connection) -> None:
    with _transaction(db):
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
    _add(db, quarantined=row[2])


def _is_spool(path: Path) -> bool:
    with contextlib.suppress(sqlite3.Error), _reader(path) as db:
        return _rows_table(_tables(db)) is not None
    return False


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


@contextlib.contextmanager
def _reader(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    try:
        yield db
    finally:
        db.close()


def _remove(db: sqlite3.Connection, table: str, seqs: list[int]) -> tuple[int, int]:
    """Delete these requests; their bytes and records."""
    size = count = 0
    records = "records" if table == "requests" else "1"
    for start in range(0, len(seqs), 500):  # SQLite's bound-parameter limit
        chunk = seqs[start : start + 500]
        marks = ",".join("?" * len(chunk))
        part, number = db.execute(
            f"SELECT COALESCE(SUM(size), 0), COALESCE(SUM({records}), 0) FROM {table} "
            f"WHERE seq IN ({marks})",
            chunk,
        ).fetchone()
        db.execute(f"DELETE FROM {table} WHERE seq IN ({marks})", chunk)
        size, count = size + part, count + number
    return size, count


_MISSING = object()


def encode_request(records: list[dict[str, Any]]) -> str:
    """One request's records as a spool body: `{"k": [varying fields], "c": {shared fields},
    "r": [[a record's varying values, in k's order], ...]}`, `k` first (the flusher reads the
    body's shape from its start). A field is shared when every record has it with the same
    value and type; a record without a varying field has null there."""
    shared: dict[str, Any] = {}
    varying: dict[str, list[Any]] = {}
    for name in dict.fromkeys(itertools.chain.from_iterable(records)):  # first seen, first
        column = [r.get(name, _MISSING) for r in records]
        value = column[0]
        # list.count and set(map(type)) compare in C: a request's 100 records in a few µs
        if column.count(value) == len(column) and len(set(map(type, column))) == 1:
            shared[name] = value
        else:
            varying[name] = [None if v is _MISSING else v for v in column]
    rows = list(zip(*varying.values(), strict=True)) if varying else [()] * len(records)
    body = {"k": list(varying), "c": shared, "r": rows}
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY).decode()  # numpy: as json did


def decode_request(body: Any) -> list[dict[str, Any]]:
    """A parsed spool body's records, each a dict by field (a v2 body is already a list)."""
    if isinstance(body, list):
        return body
    shared, names = body["c"], body["k"]
    return [{**shared, **dict(zip(names, values, strict=True))} for values in body["r"]]


def body_shape(body: str) -> str:
    """The start of a body that says its format and layout: `{"k":[…]` for this format's
    (field names only: no bracket inside), `[` for a v2 body."""
    return "[" if body.startswith("[") else body[: body.index("]") + 1]


def shape_fields(shape: str) -> list[str] | None:
    """The varying fields, in their positions, of bodies of this shape; None for v2 bodies
    (objects keyed by field)."""
    return None if shape == "[" else list(json.loads(shape[len('{"k":') :]))


def _by_request(rows: list[dict[str, Any]]) -> list[tuple[Any, list[dict[str, Any]]]]:
    """Consecutive rows of one request id together (a request's records share one)."""
    return [(key, list(group)) for key, group in itertools.groupby(rows, lambda r: r["request_id"])]


def _tables(db: sqlite3.Connection, schema: str = "main") -> set[str]:
    query = f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'"
    return {name for (name,) in db.execute(query)}


def _rows_table(tables: set[str]) -> str | None:
    """Where a spool file keeps its rows: `requests` (v2 and this format) or `records` (v1);
    None for a file that is not (yet) a spool's."""
    if "ledger" not in tables:
        return None
    return "requests" if "requests" in tables else "records" if "records" in tables else None


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error): the write lock is taken at once."""
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

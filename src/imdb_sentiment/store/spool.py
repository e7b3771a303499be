"""The spool: a bounded, durable, local queue of prediction records between a pod and the shared
database, in SQLite files on the pod's volume (`PREDICTION_SPOOL_DIR`), one per process.

A prediction's records are in the spool before its response is sent: a worker killed right
after answering, a database that is slow or away for minutes, a pod restarted meanwhile — the
records wait here and are written to the database, oldest first, when it is back
(`store.database`). A record leaves the spool only once the database has committed it, and the
database ignores a record it already has (its key is the server's unique id), so a record is
stored exactly once even if a process dies between the two.

One file per process (per spool a process opens), because the request path must not wait: a
process's request threads and its flusher share one connection under a lock (no SQLite
busy-waiting between processes; each append is one short transaction). A process holds an
exclusive `flock` on its file's lock while it lives; a file whose lock can be taken belongs to a
process that is gone (a killed worker, the pod's previous run), and the first process to take it
adopts the file: writes its records out, carries its ledger over, and removes it.

A file holds one row per request (one encode, one insert per request — per record, the spool
was a third of a short-review batch's cost), its records as one JSON object by column: `k` the
names of the fields that vary between the records, `c` the fields all of them share (the
request's id, time, model version: written once), `r` each record's varying fields as an array
in `k`'s order (`encode_request`). The database reads such a body with the positions known, so
each record costs one small parse per varying field, not one per field of its own object.

Files of releases before this format are adopted like any orphan: `spool-*` (a row per record)
and `spool.v2-*` (a row per request, a JSON array of objects: moved as they are; a body tells
its format by its first character, and both are written out). This release's files are named
`spool.v3-*`, which those releases never glob, so a rollback leaves them waiting for the next
release instead of deleting what it cannot read.

Only what exceeds the bounds is dropped: a request's records that would take a process's file
past `max_bytes`, and records older than `max_age_s` (the database was away longer than anyone
reads them for). What was dropped is counted in the files' ledgers, which survive restarts as
the spool does.
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

PREFIX = "spool.v3-"  # a row per request, its records by column (this format)
# Releases before, adopted, never written: a row per request as an array of objects (their
# table is this format's), and a row per record.
ADOPTED_PREFIXES = ("spool.v2-", "spool-")
INSERT = "INSERT INTO requests (created, request_id, records, size, body) VALUES (?, ?, ?, ?, ?)"
# An orphan's rows into this process's file, by the orphan's format (its table).
MOVE = {
    "requests": "INSERT INTO requests (created, request_id, records, size, body) SELECT created, "
    "request_id, records, size, body FROM orphan.requests ORDER BY seq",
    "records": "INSERT INTO requests (created, request_id, records, size, body) SELECT created, "
    "request_id, 1, size, '[' || body || ']' FROM orphan.records ORDER BY seq",
}
# Records, bytes and the oldest time waiting in a file, by its format (its table).
TOTALS = {
    "requests": "SELECT COALESCE(SUM(records), 0), COALESCE(SUM(size), 0), MIN(created) "
    "FROM {schema}requests",
    "records": "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created) FROM {schema}records",
}
LEDGER = ("written", "dropped_full", "dropped_expired", "dropped_unavailable")
# Numbers the spools one process opens: each has a file of its own, so two stores in one
# process (an app built twice, a test) never wait on each other's claim.
_SERIAL = itertools.count()


@dataclass(frozen=True)
class Taken:
    """The oldest waiting requests of a process's file: their keys (for `ack`) and bodies."""

    seqs: list[int]
    bodies: list[str]  # per request, its records: `encode_request`'s object (or a v2 array)
    records: int
    more: bool  # requests past the limit are waiting

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
                "written": self.ledger["written"], "dropped": dropped}  # fmt: skip


class SpoolError(OSError):
    """The spool cannot be read or written (its disk is full or gone)."""


class _File:
    """One process's spool file: its connection (shared by the process's threads under a
    lock), and the `flock` that says it is alive."""

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None,
                                  check_same_thread=False)  # fmt: skip
        self.db.execute("PRAGMA journal_mode=WAL")
        # Durable against a killed process (the OS has every committed page), which is what the
        # spool is for: a power cut or a lost node takes the pod's emptyDir anyway. No fsync,
        # then, not even at WAL checkpoints: none on the request path (~10 µs a request, and
        # no latency spikes).
        self.db.execute("PRAGMA synchronous=OFF")
        with _transaction(self.db):
            self.db.execute("CREATE TABLE IF NOT EXISTS requests (seq INTEGER PRIMARY KEY "
                            "AUTOINCREMENT, created REAL NOT NULL, request_id TEXT, "
                            "records INTEGER NOT NULL, size INTEGER NOT NULL, "
                            "body TEXT NOT NULL)")  # fmt: skip
            self.db.execute("CREATE INDEX IF NOT EXISTS requests_request ON requests (request_id)")
            self.db.execute("CREATE TABLE IF NOT EXISTS ledger (name TEXT PRIMARY KEY, "
                            "value INTEGER NOT NULL)")  # fmt: skip
            self.db.executemany("INSERT OR IGNORE INTO ledger VALUES (?, 0)",
                                [(n,) for n in LEDGER])  # fmt: skip
        (self.bytes,) = self.db.execute("SELECT COALESCE(SUM(size), 0) FROM requests").fetchone()

    def close(self) -> None:
        self.db.close()


class Spool:
    def __init__(self, directory: str | Path, max_bytes: int, max_age_s: float,
                 busy_timeout_s: float = 5.0) -> None:  # fmt: skip
        self.directory = Path(directory).absolute()  # where it is now, whatever cwd becomes
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.busy_timeout_s = busy_timeout_s
        self._file: _File | None = None
        self._pid = 0
        self._name = ""
        self._lock_fd: int | None = None
        self._open_lock = threading.Lock()

    # --- this process's file --------------------------------------------------------------
    def _mine(self) -> _File:
        """This process's file, opened (and claimed) on first use; a forked child opens its own."""
        if self._file is not None and self._pid == os.getpid():
            return self._file
        with self._open_lock:
            if self._file is None or self._pid != os.getpid():
                self.directory.mkdir(parents=True, exist_ok=True)
                name = f"{PREFIX}{os.getpid()}-{next(_SERIAL)}"
                fd = _claim(self.directory / f"{name}.lock", wait=True)
                assert fd is not None
                self._lock_fd, self._pid, self._name = fd, os.getpid(), name
                self._file = _File(self.directory / f"{name}.db", self.busy_timeout_s)
        return self._file

    # --- the request path -----------------------------------------------------------------
    def append(self, rows: list[dict[str, Any]]) -> int:
        """Keep `rows` (one request's records) durably; returns how many were kept. Past the
        size bound the request's records are dropped and counted, never half of them."""
        values = [(min(r["created"] for r in group), request_id, len(group), len(body), body)
                  for request_id, group in _by_request(rows)
                  for body in (encode_request(group),)]  # fmt: skip
        size = sum(v[3] for v in values)
        try:
            spool = self._mine()
            with spool.lock:
                if spool.bytes + size > self.max_bytes:
                    with _transaction(spool.db):
                        _add(spool.db, dropped_full=len(rows))
                    return 0
                if len(values) == 1:  # its own implicit transaction: one statement, one commit
                    spool.db.execute(INSERT, values[0])
                else:
                    with _transaction(spool.db):
                        spool.db.executemany(INSERT, values)
                spool.bytes += size
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
        """This process's oldest waiting requests, in order, up to `limit` records (at least
        one request, whatever its size); `ack` removes them."""
        spool = self._mine()
        seqs: list[int] = []
        bodies: list[str] = []
        count, more = 0, False
        with spool.lock:
            cursor = spool.db.execute("SELECT seq, records, body FROM requests ORDER BY seq")
            try:
                for seq, records, body in cursor:
                    if seqs and count + records > limit:
                        more = True
                        break
                    seqs.append(seq)
                    bodies.append(body)
                    count += records
            finally:
                cursor.close()
        return Taken(seqs, bodies, count, more)

    def ack(self, seqs: list[int]) -> None:
        """These requests' records are in the database: remove them."""
        spool = self._mine()
        with spool.lock, _transaction(spool.db):
            size, count = _remove(spool.db, seqs)
            _add(spool.db, written=count)
            spool.bytes -= size

    def expire(self, now: float | None = None) -> int:
        """Drop this process's records older than the age bound; returns how many."""
        cutoff = (now if now is not None else time.time()) - self.max_age_s
        spool = self._mine()
        with spool.lock, _transaction(spool.db):
            seqs = [s for (s,) in spool.db.execute("SELECT seq FROM requests WHERE created < ?",
                                                   (cutoff,))]  # fmt: skip
            size, count = _remove(spool.db, seqs)
            _add(spool.db, dropped_expired=count)
            spool.bytes -= size
        return count

    def adopt_orphans(self) -> int:
        """Take over the files of processes that are gone: move their records into this
        process's file (in their order, after what it holds), carry their ledgers over, remove
        them. Returns how many records moved."""
        moved = 0
        self._mine()
        locks = [lock for prefix in (*ADOPTED_PREFIXES[::-1], PREFIX)  # oldest format first
                 for lock in sorted(self.directory.glob(f"{prefix}*.lock"))]  # fmt: skip
        for lock in locks:
            if lock.stem == self._name:
                continue
            fd = _claim(lock, wait=False)
            if fd is None:
                continue  # its process is alive
            try:
                moved += self._adopt(lock.with_suffix(".db"))
                for leftover in (lock.with_suffix(".db"), lock.with_suffix(".db-wal"),
                                 lock.with_suffix(".db-shm"), lock):  # fmt: skip
                    leftover.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return moved

    def _adopt(self, path: Path) -> int:
        if not path.exists():
            return 0
        spool = self._mine()
        with spool.lock:
            spool.db.execute("ATTACH DATABASE ? AS orphan", (str(path),))  # not in a transaction
            try:
                table = _rows_table(_tables(spool.db, "orphan"))
                if table is None:
                    return 0
                with _transaction(spool.db):
                    spool.db.execute(MOVE[table])
                    spool.db.execute(
                        "UPDATE ledger SET value = value + COALESCE((SELECT value "
                        "FROM orphan.ledger o WHERE o.name = ledger.name), 0)"
                    )
                    moved, size, _ = spool.db.execute(
                        TOTALS[table].format(schema="orphan.")
                    ).fetchone()
                spool.bytes += size
            finally:
                spool.db.execute("DETACH DATABASE orphan")
        return int(moved)

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

    def state(self) -> SpoolState:
        """The whole pod's spool: every process's file, read-only."""
        records, size, oldest = 0, 0, None
        ledger = dict.fromkeys(LEDGER, 0)
        for path in self._files():
            with contextlib.suppress(sqlite3.Error), _reader(path) as db:
                table = _rows_table(_tables(db))
                if table is None:
                    continue
                count, total, first = db.execute(TOTALS[table].format(schema="")).fetchone()
                for name, value in db.execute("SELECT name, value FROM ledger"):
                    ledger[name] = ledger.get(name, 0) + value
                records, size = records + count, size + total
                if first is not None:
                    oldest = first if oldest is None else min(oldest, first)
        return SpoolState(records, size, oldest, ledger)

    def close(self) -> None:
        """Close this process's file and give up its claim (a later process adopts what it
        still holds)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
        self._file = self._lock_fd = None


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


@contextlib.contextmanager
def _reader(path: Path) -> Iterator[sqlite3.Connection]:
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
        part, records = db.execute(
            "SELECT COALESCE(SUM(size), 0), COALESCE(SUM(records), 0) FROM requests "
            f"WHERE seq IN ({marks})",
            chunk,
        ).fetchone()
        db.execute(f"DELETE FROM requests WHERE seq IN ({marks})", chunk)
        size, count = size + part, count + records
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
    """Where a spool file keeps its rows: `requests` (this format) or `records` (the format
    before); None for a file that is not (yet) a spool's."""
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

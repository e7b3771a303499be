"""The spool's files: one per live process, a gone process's file taken over or written out,
nothing waits on a live claim; the bound of the whole directory as `du` measures it; requests
taken whole; quarantine; expiry in key order; the pod's state from published totals."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from imdb_sentiment.store.spool import PREFIX, Spool
from imdb_sentiment.store.spool_file import Budget, Taken


def _row(request_id: str, text: str = "x") -> dict[str, object]:
    return {"created": 1.0e9, "request_id": request_id, "text": text}


def du(directory: Path) -> int:
    """Bytes on disk, as `du` and the kubelet count them (allocated blocks)."""
    return sum(p.stat().st_blocks * 512 for p in directory.iterdir() if p.is_file())


def test_two_spools_in_one_process_do_not_wait_on_each_other(tmp_path: Path) -> None:
    first, second = Spool(tmp_path, 1 << 22, 3600), Spool(tmp_path, 1 << 22, 3600)
    assert first.append([_row("a")]) == 1
    done = threading.Event()

    def append_second() -> None:
        second.append([_row("b")])
        done.set()

    threading.Thread(target=append_second, daemon=True).start()
    assert done.wait(5), "the second spool waited on the first one's claim"
    assert first.holds("a") and first.holds("b")
    assert list(second.orphans()) == []  # the first one is alive: its file is not an orphan
    first.close()
    second.close()


def test_a_gone_process_file_is_taken_over_whole(tmp_path: Path) -> None:
    gone = Spool(tmp_path, 1 << 22, 3600)
    gone.append([_row("a")])
    gone.quarantine(gone.take(10), gone.take(10).seqs[0], "refused")  # its ledger too
    gone.append([_row("b")])
    gone.close()  # a killed worker: its claim goes with it
    successor = Spool(tmp_path, 1 << 22, 3600)
    assert [r["request_id"] for r in successor.take(10).rows()] == ["b"]
    assert len(list(tmp_path.glob(f"{PREFIX}*.db"))) == 1  # no file of its own besides
    assert successor.state().ledger["quarantined"] == 1
    successor.close()


def test_a_file_nobody_takes_over_is_written_out_then_removed(tmp_path: Path) -> None:
    live, gone = Spool(tmp_path, 1 << 22, 3600), Spool(tmp_path, 1 << 22, 3600)
    live.append([_row("mine")])
    gone.append([_row("a")])
    gone.append([_row("b")])
    gone.close()
    written = []
    batches = live.orphans()
    for batch in batches:
        written += [r["request_id"] for r in batch.rows()]
        live.ack(batch)
    assert written == ["a", "b"]
    assert len({p.name.split(".")[1] for p in tmp_path.glob(f"{PREFIX}*")}) == 1  # the live one
    state = live.state()
    assert state.records == 1 and state.ledger["written"] == 2  # carried over
    live.close()


def test_an_orphan_waits_whole_while_its_batch_is_not_written(tmp_path: Path) -> None:
    live, gone = Spool(tmp_path, 1 << 22, 3600), Spool(tmp_path, 1 << 22, 3600)
    live.append([_row("mine")])  # its own file first (a new process would take "gone"'s over)
    gone.append([_row("a")])
    gone.close()
    batches = live.orphans()
    next(batches)  # the database is away: the flusher stops here
    batches.close()
    assert live.state().records == 2 and live.holds("a")
    again = []
    for batch in live.orphans():  # the database is back
        again += [r["request_id"] for r in batch.rows()]
        live.ack(batch)
    assert again == ["a"] and live.state().records == 1
    live.close()


def _request(request_id: str, count: int) -> list[dict[str, object]]:
    return [{"created": 1.0e9, "request_id": request_id, "item": i} for i in range(count)]


def test_a_request_is_one_row_taken_whole_up_to_the_limit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 22, 3600)
    for request_id, count in (("a", 3), ("b", 4), ("c", 2)):
        assert spool.append(_request(request_id, count)) == count
    state = spool.state()
    assert state.records == 9 and state.bytes > 0
    taken = spool.take(5)  # a and b would be 7: only a; b waits whole
    assert [(r["request_id"], r["item"]) for r in taken.rows()] == [("a", 0), ("a", 1), ("a", 2)]
    assert taken.more and len(taken.seqs) == 1
    spool.ack(taken)
    bigger = spool.take(2)  # one request over the limit still goes: never stuck
    assert [r["request_id"] for r in bigger.rows()] == ["b"] * 4 and bigger.more
    spool.ack(bigger)
    last = spool.take(5)
    assert [r["request_id"] for r in last.rows()] == ["c", "c"] and not last.more
    spool.ack(last)
    after = spool.state()
    assert after.records == 0 and after.bytes == 0 and after.ledger["written"] == 9
    assert spool.take(5) == Taken([], [], 0, False)
    spool.close()


def test_records_of_two_requests_in_one_call_are_two_rows(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 22, 3600)
    assert spool.append(_request("a", 2) + _request("b", 1)) == 3
    assert spool.holds("a") and spool.holds("b") and not spool.holds("c")
    assert len(spool.take(2).seqs) == 1  # a (2 records) alone fits 2
    spool.close()


@pytest.mark.parametrize("processes", [1, 4])
def test_the_directory_never_grows_past_its_bound(tmp_path: Path, processes: int) -> None:
    """Every process's file, WAL and shared memory within `max_bytes` as `du` counts them,
    however long the database is away: past it, whole requests are dropped and counted."""
    bound = 2 << 20
    spools = [Spool(tmp_path, bound, 3600, processes=processes) for _ in range(processes)]
    kept = dropped = 0
    text = "x" * 4000
    for i in range(3000):
        spool = spools[i % processes]
        count = spool.append([_row(f"r{i}", text)])
        kept += count
        dropped += count == 0
        assert du(tmp_path) <= bound, (i, du(tmp_path))
    assert dropped > 0 and kept > 100
    state = spools[0].state()
    assert state.ledger["dropped_full"] == dropped and state.records == kept
    # Writing some out (a flush) makes room again; the WAL is checkpointed, not grown.
    spool = spools[0]
    spool.ack(spool.take(1000))
    assert spool.append([_row("after", text)]) == 1 and du(tmp_path) <= bound
    for spool in spools:
        spool.close()
    assert du(tmp_path) <= bound


def test_a_budget_spends_at_most_a_quarter_on_the_wal() -> None:
    budget = Budget.of(2 << 20)
    assert budget.db_pages * 4096 <= (2 << 20) * 3 // 4
    assert budget.wal_pages * 4096 + budget.batch_bytes <= (2 << 20) // 4


def test_quarantine_sets_a_request_aside_with_its_reason(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 22, 3600)
    spool.append(_request("poison", 2))
    spool.append(_request("fine", 1))
    taken = spool.take(10)
    spool.quarantine(taken, taken.seqs[0], "value too long for type character varying(32)")
    spool.ack(taken, taken.seqs[1:])
    state = spool.state()
    assert state.records == 0 and state.ledger["quarantined"] == 2 and state.ledger["written"] == 1
    spool.close()
    file = next(tmp_path.glob(f"{PREFIX}*.db"))
    with sqlite3.connect(file) as db:
        ((request_id, reason),) = db.execute("SELECT request_id, reason FROM quarantine")
    assert request_id == "poison" and "too long" in reason


def test_expiry_drops_the_oldest_in_key_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 22, 100)
    for i, created in enumerate((1000.0, 1050.0, 1200.0)):
        spool.append([{"created": created, "request_id": f"r{i}"}])
    assert spool.expire(now=1160.0) == 2  # older than 1060
    assert [r["request_id"] for r in spool.take(10).rows()] == ["r2"]
    assert spool.state().ledger["dropped_expired"] == 2
    spool.close()


def test_the_pod_state_reads_published_totals_not_records(tmp_path: Path) -> None:
    mine, other = Spool(tmp_path, 1 << 22, 3600), Spool(tmp_path, 1 << 22, 3600)
    mine.append(_request("a", 2))
    other.append(_request("b", 3))
    other.publish()
    assert mine.state().records == 5
    other.append(_request("c", 4))  # not published yet: the state lags, it does not scan
    assert mine.state().records == 5
    other.publish()
    assert mine.state().records == 9
    mine.close()
    other.close()


def test_a_gone_process_file_is_counted_by_its_records_not_its_stale_totals(
    tmp_path: Path,
) -> None:
    """A worker killed after its last publish: its records still count until written out
    (the store faults test waited on a zero that left three records behind)."""
    mine, gone = Spool(tmp_path, 1 << 22, 3600), Spool(tmp_path, 1 << 22, 3600)
    mine.append(_request("a", 1))  # its own file already: it takes over nobody's
    gone.append(_request("b", 3))
    gone.publish()
    gone.append(_request("c", 2))  # after its last publish
    assert gone._file is not None and gone._lock_fd is not None
    gone._file.db.close()  # SIGKILL: no last publish; the kernel drops its lock
    os.close(gone._lock_fd)
    assert mine.state().records == 6
    mine.close()

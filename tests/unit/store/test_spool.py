"""The spool's claims: a file per spool, orphans adopted, nothing waits on a live claim."""

from __future__ import annotations

import threading
from pathlib import Path

from imdb_sentiment.store.spool import PREFIX, Spool, Taken


def _row(request_id: str) -> dict[str, object]:
    return {"created": 1.0e9, "request_id": request_id, "text": "x"}


def test_two_spools_in_one_process_do_not_wait_on_each_other(tmp_path: Path) -> None:
    first, second = Spool(tmp_path, 1 << 20, 3600), Spool(tmp_path, 1 << 20, 3600)
    assert first.append([_row("a")]) == 1
    done = threading.Event()

    def append_second() -> None:
        second.append([_row("b")])
        done.set()

    threading.Thread(target=append_second, daemon=True).start()
    assert done.wait(5), "the second spool waited on the first one's claim"
    assert first.state().records == 2 and first.holds("a") and first.holds("b")
    assert second.adopt_orphans() == 0  # the first one is alive: its file is not an orphan
    first.close()
    assert second.adopt_orphans() == 1  # closed: its record moves over, its files go
    assert len(list(tmp_path.glob(f"{PREFIX}*.db"))) == 1
    assert [row["request_id"] for row in second.take(10).rows()] == ["b", "a"]
    second.close()


def _request(request_id: str, count: int) -> list[dict[str, object]]:
    return [{"created": 1.0e9, "request_id": request_id, "item": i} for i in range(count)]


def test_a_request_is_one_row_taken_whole_up_to_the_limit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20, 3600)
    for request_id, count in (("a", 3), ("b", 4), ("c", 2)):
        assert spool.append(_request(request_id, count)) == count
    state = spool.state()
    assert state.records == 9 and state.bytes > 0
    taken = spool.take(5)  # a and b would be 7: only a; b waits whole
    assert [(r["request_id"], r["item"]) for r in taken.rows()] == [("a", 0), ("a", 1), ("a", 2)]
    assert taken.more and len(taken.seqs) == 1
    spool.ack(taken.seqs)
    bigger = spool.take(2)  # one request over the limit still goes: never stuck
    assert [r["request_id"] for r in bigger.rows()] == ["b"] * 4 and bigger.more
    spool.ack(bigger.seqs)
    last = spool.take(5)
    assert [r["request_id"] for r in last.rows()] == ["c", "c"] and not last.more
    spool.ack(last.seqs)
    after = spool.state()
    assert after.records == 0 and after.bytes == 0 and after.ledger["written"] == 9
    assert spool.take(5) == Taken([], [], 0, False)
    spool.close()


def test_records_of_two_requests_in_one_call_are_two_rows(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20, 3600)
    assert spool.append(_request("a", 2) + _request("b", 1)) == 3
    assert spool.holds("a") and spool.holds("b") and not spool.holds("c")
    assert len(spool.take(2).seqs) == 1  # a (2 records) alone fits 2
    spool.close()


def test_past_the_size_bound_a_request_is_dropped_whole_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 400, 3600)
    assert spool.append(_request("a", 3)) == 3
    assert spool.append(_request("b", 200)) == 0  # would pass 400 bytes
    state = spool.state()
    assert state.records == 3 and state.ledger["dropped_full"] == 200
    spool.close()

"""The spool's claims: a file per spool, orphans adopted, nothing waits on a live claim."""

from __future__ import annotations

import threading
from pathlib import Path

from imdb_sentiment.store.spool import Spool


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
    assert len(list(tmp_path.glob("spool-*.db"))) == 1
    assert [body["request_id"] for _, body in second.take(10)] == ["b", "a"]
    second.close()

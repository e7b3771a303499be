"""The flusher at the store's edges, on SQLite and a real PostgreSQL: records the database refuses
for good are quarantined and the rest flows; texts are stored safely; the thread survives what
it did not expect; retention deletes in batches under its own timeout and says when behind."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from imdb_sentiment.store import retention as retention_module
from imdb_sentiment.store.database import PredictionStore
from imdb_sentiment.store.records import PredictionRecord, storable
from imdb_sentiment.store.retention import RetentionRun
from imdb_sentiment.store.spool import PREFIX, Spool
from imdb_sentiment.store.tables import predictions


def writer(url: str, spool: Path, **kwargs: Any) -> PredictionStore:
    return PredictionStore(url, spool=Spool(spool, 10**8, 3600.0), **kwargs)


def good(request_id: str, **changes: Any) -> PredictionRecord:
    return PredictionRecord(time.time(), request_id, "1", 0.9, "positive", 0.1, 5, 20)._replace(
        **changes
    )


def stored(store: PredictionStore) -> dict[str, PredictionRecord]:
    return {r.request_id: r for r in store.records() if r.request_id is not None}


def quarantined(spool_dir: Path) -> list[tuple[str, str]]:
    found = []
    for path in spool_dir.glob(f"{PREFIX}*.db"):
        with sqlite3.connect(path) as db:
            found += db.execute("SELECT request_id, reason FROM quarantine").fetchall()
    return found


POISON: dict[str, dict[str, Any]] = {
    # PostgreSQL refuses each of these; SQLite stores what its types allow (no length limit,
    # NUL in a text).
    "over-long": {"model_version": "9" * 40},  # String(32)
    "NUL in a field the edge does not clean": {"model_version": "1\x002"},
    "a constraint": {"label": None},  # NOT NULL, on both
}


@pytest.mark.parametrize("poison", sorted(POISON))
def test_a_record_refused_for_good_is_quarantined_and_the_rest_flows(
    database_url: str, tmp_path: Path, poison: str
) -> None:
    store = writer(database_url, tmp_path / "spool", keep_text=True)
    store.remember([good("before")])
    store.remember([good("poison", **POISON[poison])])
    for i in range(200):
        store.remember([good(f"after-{i}")])
    assert store.flush()
    kept = stored(store)
    assert "before" in kept and all(f"after-{i}" in kept for i in range(200))
    refused = database_url.startswith("postgresql") or poison == "a constraint"
    assert ("poison" not in kept) is refused
    aside = quarantined(tmp_path / "spool")
    assert [rid for rid, _ in aside] == (["poison"] if refused else [])
    state = store.spool.state()  # type: ignore[union-attr]
    assert state.records == 0 and state.ledger["quarantined"] == (1 if refused else 0)
    store.close()


def test_texts_are_stored_safely_nul_and_lone_surrogates_included(
    database_url: str, tmp_path: Path
) -> None:
    """NUL (which PostgreSQL's text cannot hold) and lone surrogates become U+FFFD in the stored
    copy; everything else is kept as it came."""
    store = writer(database_url, tmp_path / "spool", keep_text=True)
    texts = {"nul": "good\x00film", "surrogate": "bad \ud800 film", "plain": "ça, 映画 🎬"}
    for name, text in texts.items():
        store.remember([good(name, text=text)])
    assert store.flush()
    kept = stored(store)
    assert kept["nul"].text == "good\ufffdfilm" and kept["plain"].text == texts["plain"]
    assert kept["surrogate"].text is not None and "\ufffd" in kept["surrogate"].text
    assert quarantined(tmp_path / "spool") == []
    assert storable(None) is None and storable("fine") == "fine"
    store.close()


def test_the_flusher_survives_an_unexpected_error_and_keeps_writing(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sqlite3.Error from the spool (a full volume during an ack, say) ends a round, not the
    thread: the next round writes what waits."""
    store = writer(database_url, tmp_path / "spool")
    assert store.spool is not None
    real_take = store.spool.take
    failures = {"left": 3}

    def take(limit: int) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return real_take(limit)

    monkeypatch.setattr(store.spool, "take", take)
    monkeypatch.setattr("imdb_sentiment.store.flusher.RETRY_MAX_S", 0.2)
    rounds: list[float] = []
    store.on_flush_round = rounds.append
    store.remember([good("one")])
    deadline = time.monotonic() + 20
    while "one" not in stored(store):
        assert time.monotonic() < deadline, "the flusher stopped for good"
        time.sleep(0.1)
    assert failures["left"] == 0 and len(rounds) >= 4
    assert store._worker is not None and store._worker.is_alive()
    store.close()


def test_a_dead_flusher_is_started_again_by_the_next_request(
    database_url: str, tmp_path: Path
) -> None:
    store = writer(database_url, tmp_path / "spool")
    store.remember([good("one")])
    first = store._worker
    assert first is not None
    first.stop(drain_s=1)  # gone, as if it had died
    store.spool = Spool(tmp_path / "spool", 10**8, 3600.0)  # stop closed the old one
    store.remember([good("two")])
    assert store._worker is not first and store._worker is not None
    assert store._worker.is_alive()
    store.close()


def _old_rows(store: PredictionStore, count: int, created: float) -> None:
    rows = [{"request_id": f"old-{i}", "item": 0, "created": created, "model_version": "1",
             "probability": 0.5, "label": "positive"} for i in range(count)]  # fmt: skip
    with store.engine.begin() as db:
        db.execute(insert(predictions), rows)


def test_retention_deletes_in_batches_and_says_when_behind(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PredictionStore(database_url, retention_hours=1.0, prune_interval_s=300)
    _old_rows(store, 250, time.time() - 7200)
    monkeypatch.setattr(retention_module, "RETENTION_BATCH", 100)
    runs: list[RetentionRun] = []
    store.retention.on_run = runs.append
    store.retention.budget_s = 0.0  # one batch, then out of time: behind
    assert store.prune() == 100
    assert runs[-1].behind and runs[-1].deleted == 100
    store.retention.budget_s = 60.0
    assert store.prune() == 150 and not runs[-1].behind
    with store.engine.connect() as db:
        assert db.execute(select(func.count()).select_from(predictions)).scalar() == 0

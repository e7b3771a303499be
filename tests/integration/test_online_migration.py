"""Migrations are online-safe on a large PostgreSQL table that pods write throughout: 2M
prediction rows at the revision before the newest, inserts running the whole time, then
`imdb-sentiment db upgrade`'s `upgrade` with a 0.25 s lock timeout. No insert waits longer than
that lock timeout (columns are added in a moment, the index is built concurrently), and the
migration finishes. For reference, the same load against the index built the old way (in the
revision's transaction) is measured and printed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, text

from harness.postgres import PostgresServer
from imdb_sentiment.store.migrate import upgrade
from imdb_sentiment.store.schema import head
from imdb_sentiment.store.store_settings import Timeouts
from tests.unit.store.test_schema import migrate_to

pytestmark = pytest.mark.slow
ROWS = 2_000_000
LOCK_TIMEOUT_S = 0.25


def loaded_database(postgres: PostgresServer) -> str:
    url = postgres.new_database()
    before = [r for r in ("0001", "0002", "0003", "0004") if r < head()][-1]
    migrate_to(url, before)
    engine = create_engine(url)
    with engine.begin() as db:
        db.execute(text(
            "INSERT INTO predictions (request_id, item, created, model_version, probability, "
            "label, unknown_share, tokens, text_chars) SELECT md5(i::text), 0, "
            "1.8e9 - i, '1', random(), CASE WHEN i % 2 = 0 THEN 'positive' ELSE 'negative' END, "
            "0.1, 50, 300 FROM generate_series(1, :rows) AS i"
        ), {"rows": ROWS})  # fmt: skip
        db.execute(text("ANALYZE predictions"))
    engine.dispose()
    return url


def inserts_during(url: str, action: Callable[[], object]) -> tuple[list[float], float]:
    """Single-row inserts from two sessions (no timeout of their own: how long each waited is
    the measure) while `action` runs: every insert's latency, and how long `action` took."""
    latencies: list[float] = []
    stop = threading.Event()
    engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=2)

    def insert(worker: int) -> None:
        with engine.connect() as db:
            n = 0
            while not stop.is_set():
                started = time.perf_counter()
                db.execute(text("INSERT INTO predictions (request_id, item, created, "
                                "probability, label) VALUES (:rid, 0, 1.9e9, 0.5, 'positive')"),
                           {"rid": f"live-{worker}-{n}-{time.monotonic_ns()}"})  # fmt: skip
                latencies.append(time.perf_counter() - started)
                n += 1

    threads = [threading.Thread(target=insert, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    try:
        action()
    finally:
        took = time.monotonic() - started
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        engine.dispose()
    return latencies, took


def test_the_migration_never_makes_inserts_wait_longer_than_its_lock_timeout(
    postgres: PostgresServer,
) -> None:
    url = loaded_database(postgres)
    timeouts = Timeouts(statement_s=600.0, lock_s=LOCK_TIMEOUT_S)
    latencies, took = inserts_during(url, lambda: upgrade(url, timeouts))
    engine = create_engine(url)
    with engine.connect() as db:
        revision = db.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        valid = db.execute(text(
            "SELECT bool_and(i.indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = 'predictions_shadow_version'")).scalar_one()  # fmt: skip
    engine.dispose()
    assert revision == head() and valid
    worst = max(latencies)
    print(f"\nonline migration of {ROWS:,} rows: {took:.1f} s; {len(latencies):,} inserts "
          f"meanwhile, the slowest waited {worst * 1000:.0f} ms (lock timeout "
          f"{LOCK_TIMEOUT_S * 1000:.0f} ms)")  # fmt: skip
    assert worst <= LOCK_TIMEOUT_S and len(latencies) > 100

    # The reference, same load: the index built the way the revision did before (in a
    # transaction, no CONCURRENTLY) — inserts wait for the whole build.
    def old_way() -> None:
        engine = create_engine(url)
        with engine.begin() as db:
            db.execute(text("CREATE INDEX predictions_shadow_old ON predictions (shadow_version)"))
        engine.dispose()

    old_latencies, old_took = inserts_during(url, old_way)
    print(f"reference, the index built in a transaction: {old_took:.1f} s, the slowest insert "
          f"waited {max(old_latencies) * 1000:.0f} ms")  # fmt: skip
    assert max(old_latencies) > 5 * worst  # what this test would have caught

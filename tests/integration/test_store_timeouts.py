"""Bounded waits on the database, tried for real: a database that accepts connections and never
answers, and a real PostgreSQL server whose tables are held under locks. Feedback answers 503
within its budget, predictions are not held up at all (they only touch the pod's spool), a pod
starts in seconds whatever the database does, and a migration that cannot get its lock gives up
after its lock timeout instead of queueing every insert behind it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import Connection, create_engine, text

from harness.postgres import PostgresServer
from harness.project import ROOT, run
from harness.server import Pod
from imdb_sentiment.store.schema import MIGRATIONS, scripts
from tests.unit.serving.test_live_model import publish

pytestmark = pytest.mark.slow
BUDGET_S = 2.0


class SilentDatabase:
    """Accepts TCP connections and reads what it is sent, and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        while True:
            try:
                if not conn.recv(4096):
                    return
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentDatabase]:
    server = SilentDatabase()
    yield server
    server.close()


def timed(call: object) -> tuple[requests.Response, float]:
    start = time.monotonic()
    answer = call()  # type: ignore[operator]
    return answer, time.monotonic() - start


def test_a_database_that_never_answers_costs_feedback_its_budget_and_predictions_nothing(
    tmp_path: Path, silent: SilentDatabase
) -> None:
    publish(seed=1)
    pod = Pod(tmp_path / "pod", {
        "DATABASE_URL": f"postgresql+psycopg://u:p@127.0.0.1:{silent.port}/db",
        "DATABASE_MIGRATE": "off", "FEEDBACK_BUDGET_S": str(BUDGET_S),
        # The budget holds even where the connect timeout alone would wait longer; readiness
        # waits for one look at the schema, at most the connect timeout.
        "DATABASE_CONNECT_TIMEOUT_S": "5",
    })  # fmt: skip
    started = time.monotonic()
    pod.start(timeout=60)
    try:
        assert time.monotonic() - started < 20  # no minutes-long start on a silent database
        assert silent.accepted, "the service did try the database"
        rid = requests.post(f"{pod.url}/api/v1/predict", json={"text": "Fine."}).headers[
            "X-Request-ID"
        ]
        slow: list[float] = []

        def feedback() -> None:
            for _ in range(3):
                answer, seconds = timed(lambda: requests.post(
                    f"{pod.url}/api/v1/feedback", json={"request_id": rid, "label": "positive"},
                    timeout=30))  # fmt: skip
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"] == "feedback_unavailable"
                slow.append(seconds)

        waiting = threading.Thread(target=feedback)
        waiting.start()
        latencies = []
        while waiting.is_alive():  # predictions meanwhile, on the other worker
            answer, seconds = timed(
                lambda: requests.post(f"{pod.url}/api/v1/predict", json={"text": "Moving."})
            )
            assert answer.status_code == 200
            latencies.append(seconds)
        waiting.join()
        assert len(slow) == 3 and max(slow) < BUDGET_S + 1.0, slow
        latencies.sort()
        assert len(latencies) > 20 and latencies[int(len(latencies) * 0.99)] < 0.5, latencies[-5:]
    finally:
        pod.stop()


def test_locks_held_in_the_database_bound_feedback_and_migrations(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    publish(seed=1)
    url = postgres.new_database()
    run(["imdb-sentiment", "db", "upgrade"], ROOT, {"DATABASE_URL": url})
    pod = Pod(tmp_path / "pod", {"DATABASE_URL": url, "DATABASE_MIGRATE": "off",
                                 "FEEDBACK_BUDGET_S": str(BUDGET_S)})  # fmt: skip
    pod.start()
    holder = create_engine(url).connect()
    try:
        rid = requests.post(f"{pod.url}/api/v1/predict", json={"text": "Fine."}).headers[
            "X-Request-ID"
        ]
        time.sleep(1)  # written from the spool
        # Labels and predictions locked by a long transaction (an ALTER TABLE would do this).
        holder.execute(text("LOCK TABLE feedback, predictions IN ACCESS EXCLUSIVE MODE"))
        answer, seconds = timed(lambda: requests.post(
            f"{pod.url}/api/v1/feedback", json={"request_id": rid, "label": "positive"},
            timeout=30))  # fmt: skip
        assert answer.status_code == 503 and seconds < BUDGET_S + 1.0, (answer.text, seconds)
        for _ in range(20):  # predictions only touch the spool: never blocked by the lock
            answer, seconds = timed(lambda: requests.post(
                f"{pod.url}/api/v1/predict", json={"text": "Dull."}, timeout=30))  # fmt: skip
            assert answer.status_code == 200 and seconds < 0.5, seconds
        holder.rollback()
        # A migration meeting a lock gives up waiting after its lock timeout (inserts queue
        # behind a waiting ALTER TABLE no longer than that), and tries again until it has it.
        with create_engine(url).connect() as db:  # back to revision 0002: migrations ahead
            downgrade_to(db, "0002")
        holder.execute(text("LOCK TABLE predictions IN ACCESS SHARE MODE"))
        threading.Timer(4.0, holder.rollback).start()  # the long transaction ends
        started = time.monotonic()
        env = {"DATABASE_URL": url, "DATABASE_MIGRATION_LOCK_TIMEOUT_S": "1"}
        done = run(["imdb-sentiment", "db", "upgrade"], ROOT, env)
        assert time.monotonic() - started >= 4.0
        assert (
            "migration waited too long for a lock (canceling statement due to lock timeout)"
            in done.stderr
            and "Traceback" not in done.stderr
        )
        assert f"revision {scripts().get_current_head()}" in done.stdout
        # Labelled at last, once the locks are gone.
        answer = requests.post(f"{pod.url}/api/v1/feedback", timeout=30,
                               json={"request_id": rid, "label": "positive"})  # fmt: skip
        assert answer.status_code == 201, answer.text
    finally:
        holder.close()
        pod.stop()


def downgrade_to(db: Connection, revision: str) -> None:
    """Alembic's own downgrade, on this connection (as `store.migrate.upgrade` runs upgrades)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = db
    command.downgrade(config, revision)

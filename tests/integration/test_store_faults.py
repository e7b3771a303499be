"""The prediction store under faults, as the platform would cause them: two instances of the
real service (gunicorn, 2 workers each, their own directories and spools) on one real PostgreSQL
server, under concurrent prediction and feedback load for over 40 s, while a worker is SIGKILLed,
the database is stopped for over 10 s and started again, and one instance is stopped (SIGTERM)
and started again on its directory. The same on the embedded default, one SQLite file, without
the outage.

Afterwards: every label acknowledged with a 201 is in the database with that label; every
prediction answered with a 200 is in the database (nothing lost: the spool's bound lies above
what the outage needs, and nothing was dropped); no record twice, and none besides those of
requests whose answer was lost on the way (a record is kept before its answer is sent); no 5xx
but 503; and two requests with the same X-Request-ID are two records, a guessed id a 404.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from harness.postgres import PostgresServer
from harness.project import ROOT, run
from harness.server import Pod, free_port
from imdb_sentiment.store.spool import Spool
from tests.integration.test_feedback_live import metric
from tests.unit.serving.test_live_model import publish

pytestmark = pytest.mark.slow
WORDS = ["great", "awful", "moving", "dull", "brilliant", "boring", "superb", "tedious",
         "charming", "clumsy"]  # fmt: skip


@dataclass
class Ledger:
    """What the clients were told."""

    predicted: dict[str, int] = field(default_factory=dict)  # 200: request id -> items
    labelled: dict[tuple[str, int], str] = field(default_factory=dict)  # 201: label
    statuses: Counter[int] = field(default_factory=Counter)
    unreachable: int = 0
    # Predictions sent whose answer never came (a worker SIGKILLed after it spooled them, a
    # connection reset): the server may have kept them, the client cannot know their ids.
    unanswered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def review(rnd: random.Random) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 12))) + "."


def client(pods: list[Pod], ledger: Ledger, stop: threading.Event, seed: int) -> None:
    rnd = random.Random(seed)
    session = requests.Session()
    while not stop.is_set():
        pod = rnd.choice(pods)
        predicting = False
        try:
            if ledger.predicted and rnd.random() < 0.3:
                with ledger.lock:
                    rid = rnd.choice(list(ledger.predicted))
                    item = rnd.randrange(ledger.predicted[rid])
                label = rnd.choice(["positive", "negative"])
                body = {"request_id": rid, "item": item, "label": label}
                answer = session.post(f"{pod.url}/api/v1/feedback", json=body, timeout=15)
                if answer.status_code == 201:
                    with ledger.lock:
                        ledger.labelled[(rid, item)] = label
            else:
                predicting = True
                texts = [review(rnd) for _ in range(rnd.choice([1, 1, 2, 5]))]
                answer = session.post(f"{pod.url}/api/v1/predict", json={"texts": texts},
                                      timeout=15)  # fmt: skip
                if answer.status_code == 200:
                    with ledger.lock:
                        ledger.predicted[answer.headers["X-Request-ID"]] = len(texts)
            with ledger.lock:
                ledger.statuses[answer.status_code] += 1
        except requests.RequestException:  # a killed worker's connection, a pod restarting
            with ledger.lock:
                ledger.unreachable += 1
                ledger.unanswered += predicting
            time.sleep(0.05)


@pytest.fixture
def pods(tmp_path: Path, postgres: PostgresServer) -> Iterator[tuple[list[Pod], str]]:
    publish(seed=1)
    url = postgres.new_database()
    run(["imdb-sentiment", "db", "upgrade"], ROOT, {"DATABASE_URL": url})
    env = {"DATABASE_URL": url, "DATABASE_MIGRATE": "off", "PREDICTION_LOG_RATE": "0"}
    started = [Pod(tmp_path / name, env) for name in ("a", "b")]
    for pod in started:
        pod.start()
    try:
        yield started, url
    finally:
        for pod in started:
            if pod.proc is not None and pod.proc.poll() is None:
                pod.stop()


def wait_until(check: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def under_load(
    pods: list[Pod], faults: Callable[[], None], seconds: float = 45
) -> tuple[Ledger, float]:
    """Four clients predicting and labelling on `pods` while `faults` runs, for `seconds` in
    all: what they were told, and how long the load lasted."""
    ledger, stop = Ledger(), threading.Event()
    clients = [threading.Thread(target=client, args=(pods, ledger, stop, seed))
               for seed in range(4)]  # fmt: skip
    for thread in clients:
        thread.start()
    started = time.monotonic()
    try:
        faults()
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=30)
    return ledger, time.monotonic() - started


def read_store(url: str) -> tuple[Counter[tuple[str, int]], dict[tuple[str, int], str]]:
    """The predictions stored (how often each) and the labels stored."""
    engine = create_engine(url)
    with engine.connect() as db:
        rows = db.execute(text("SELECT request_id, item FROM predictions"))
        stored = Counter((rid, item) for rid, item in rows)
        rows = db.execute(text("SELECT request_id, item, actual FROM feedback"))
        labels = {(rid, item): actual for rid, item, actual in rows}
    engine.dispose()
    return stored, labels


def assert_all_kept(pods: list[Pod], url: str, ledger: Ledger) -> int:
    """Every answered prediction stored once (and nothing else), every acknowledged label as
    acknowledged, no 5xx but 503, nothing dropped: the number of predictions stored."""
    for pod in pods:  # the spools empty into the database
        wait_until(lambda p=pod: metric(p.url, "prediction_spool_records") == 0, 90,
                   f"spool of {pod.home.name} not written")  # fmt: skip
    stored, labels = read_store(url)
    expected = {(rid, i) for rid, n in ledger.predicted.items() for i in range(n)}
    missing = expected - set(stored)
    if missing:  # lost, or late (the spools said empty too soon)? Say which, then fail.
        time.sleep(20)
        late = missing & set(read_store(url)[0])
        spools = {p.home.name: Spool(p.home / "spool", 1 << 20, 3600) for p in pods}
        waiting = [name for name, spool in spools.items() for rid, _ in missing if spool.holds(rid)]
        raise AssertionError(
            f"{len(missing)} of {len(expected)} answered predictions are not stored "
            f"({len(late)} arrived 20 s later; still in a spool: {waiting}; "
            f"e.g. {sorted(missing)[:3]})"
        )
    assert max(stored.values()) == 1  # no record twice
    # Nothing else, but the requests whose answer was lost on the way (kept before answering):
    # whole requests, no more of them than predictions that went unanswered.
    unknown = {rid for rid, _ in set(stored) - expected}
    assert len(unknown) <= ledger.unanswered, (unknown, ledger.unanswered)
    assert not unknown & set(ledger.predicted)
    lost = {k: v for k, v in ledger.labelled.items() if labels.get(k) != v}
    assert not lost, f"{len(lost)} acknowledged labels are not stored as acknowledged"
    server_errors = {s: n for s, n in ledger.statuses.items() if s >= 500 and s != 503}
    assert not server_errors, server_errors
    for pod in pods:
        assert metric(pod.url, "prediction_spool_dropped_records_total") == 0
    assert len(ledger.predicted) > 500 and len(ledger.labelled) > 100, ledger.statuses
    return len(expected)


def test_nothing_acknowledged_is_lost_under_worker_kills_an_outage_and_a_restart(
    pods: tuple[list[Pod], str], postgres: PostgresServer
) -> None:
    (a, b), url = pods
    outage = [0.0]

    def faults() -> None:
        time.sleep(5)
        os.kill(a.workers()[0], signal.SIGKILL)  # a worker dies mid-load
        time.sleep(5)
        postgres.stop()  # the database is away for 12 s
        started = time.monotonic()
        time.sleep(12)
        postgres.start()
        outage[0] = time.monotonic() - started
        time.sleep(4)
        assert b.stop() == 0  # a pod stopped as Kubernetes stops it, then started again
        b.start()

    ledger, loaded = under_load([a, b], faults)
    stored = assert_all_kept([a, b], url, ledger)
    # The run was what it claims: long enough, an outage long enough, real traffic in it.
    assert loaded >= 40 and outage[0] >= 10
    assert ledger.statuses[503] > 0  # feedback was refused during the outage, not faked
    print(f"\nfault run: {stored} predictions, {len(ledger.labelled)} labels stored; "
          f"statuses {dict(ledger.statuses)}; {ledger.unreachable} connections refused or reset; "
          f"outage {outage[0]:.1f} s")  # fmt: skip


def test_the_embedded_sqlite_store_keeps_everything_under_worker_kills_and_restarts(
    tmp_path: Path,
) -> None:
    """The embedded default: both instances on one SQLite file, as on one machine. A worker of
    each SIGKILLed mid-load (its spool adopted by the next), one instance stopped and started."""
    publish(seed=1)
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    run(["imdb-sentiment", "db", "upgrade"], ROOT, {"DATABASE_URL": url})
    env = {"DATABASE_URL": url, "DATABASE_MIGRATE": "off", "PREDICTION_LOG_RATE": "0"}
    a, b = (Pod(tmp_path / name, env) for name in ("a", "b"))
    try:
        for pod in (a, b):
            pod.start()

        def faults() -> None:
            time.sleep(6)
            os.kill(a.workers()[0], signal.SIGKILL)
            time.sleep(6)
            os.kill(b.workers()[-1], signal.SIGKILL)
            time.sleep(8)
            assert a.stop() == 0
            a.start()

        ledger, loaded = under_load([a, b], faults, seconds=35)
        stored = assert_all_kept([a, b], url, ledger)
        assert loaded >= 30
        print(f"\nsqlite fault run: {stored} predictions, {len(ledger.labelled)} labels; "
              f"statuses {dict(ledger.statuses)}; {ledger.unreachable} refused")  # fmt: skip
    finally:
        for pod in (a, b):
            if pod.proc is not None and pod.proc.poll() is None:
                pod.stop()


def test_ids_are_the_servers_two_requests_with_one_client_id_are_two_records(
    pods: tuple[list[Pod], str],
) -> None:
    (a, b), url = pods
    sent = {"X-Request-ID": "same-client-id"}
    first = requests.post(f"{a.url}/api/v1/predict", json={"text": "Great."}, headers=sent)
    second = requests.post(f"{b.url}/api/v1/predict", json={"text": "Awful."}, headers=sent)
    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert len(set(ids)) == 2 and "same-client-id" not in ids
    for rid, label in zip(ids, ("positive", "negative"), strict=True):
        answer = requests.post(f"{b.url}/api/v1/feedback", timeout=10,
                               json={"request_id": rid, "label": label})  # fmt: skip
        assert answer.status_code == 201, answer.text
    engine = create_engine(url)
    with engine.connect() as db:
        rows = db.execute(text("SELECT request_id, client_request_id FROM predictions")).all()
    engine.dispose()
    assert sorted(rows) == sorted((rid, "same-client-id") for rid in ids)
    # The caller's id names nothing; neither does a guess.
    for guess in ("same-client-id", ids[0][:-1] + ("0" if ids[0][-1] != "0" else "1")):
        answer = requests.post(f"{a.url}/api/v1/feedback", timeout=10,
                               json={"request_id": guess, "label": "positive"})  # fmt: skip
        assert answer.status_code == 404, answer.text


# --- the store at its edges (issue: one bad record, the spool's bound, probes) --------------
def test_a_nul_review_then_200_predictions_all_reach_the_database(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    """Texts kept, on PostgreSQL: a review with a NUL character (PostgreSQL's text cannot hold
    one) is answered and stored safely, and every prediction after it reaches the database."""
    publish(seed=1)
    url = postgres.new_database()
    run(["imdb-sentiment", "db", "upgrade"], ROOT, {"DATABASE_URL": url})
    pod = Pod(
        tmp_path / "pod",
        {
            "DATABASE_URL": url,
            "DATABASE_MIGRATE": "off",
            "PREDICTION_LOG_TEXT": "true",
            "PREDICTION_LOG_RATE": "0",
        },
    )
    pod.start()
    try:
        session = requests.Session()
        nul = session.post(f"{pod.url}/api/v1/predict", json={"text": "good\u0000film"})
        assert nul.status_code == 200
        ids = [nul.headers["X-Request-ID"]]
        for i in range(200):
            answer = session.post(f"{pod.url}/api/v1/predict", json={"text": f"fine film {i}"})
            assert answer.status_code == 200
            ids.append(answer.headers["X-Request-ID"])
        engine = create_engine(url)

        def stored() -> dict[str, str]:
            with engine.connect() as db:
                rows = db.execute(text("SELECT request_id, text FROM predictions")).all()
            return {str(rid): body for rid, body in rows}

        wait_until(lambda: set(ids) <= set(stored()), 30, "not all 201 predictions reached it")
        assert stored()[ids[0]] == "good\ufffdfilm"
        engine.dispose()
        assert metric(pod.url, "prediction_spool_quarantined_records_total") == 0
    finally:
        pod.stop()


def du(directory: Path) -> int:
    """Bytes on disk under `directory`, as `du` and the kubelet count them (allocated blocks)."""
    return sum(p.stat().st_blocks * 512 for p in directory.rglob("*") if p.is_file())


def grpc_client(pod: Pod, port: int, stop: threading.Event, sent: Counter[str]) -> None:
    import numpy as np
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    text_4k = ("A long and thoughtful review of a film. " * 100)[:4000].encode()
    while not stop.is_set():
        tensor = grpcclient.InferInput("text", [2], "BYTES")
        tensor.set_data_from_numpy(np.array([text_4k, text_4k], dtype=object))
        try:
            client.infer("imdb-sentiment", [tensor])
            sent["grpc"] += 2
        except Exception:  # a worker's restart, a busy front: try again
            time.sleep(0.05)


def http_client(pod: Pod, stop: threading.Event, sent: Counter[str]) -> None:
    session = requests.Session()
    body = {"texts": [("A long, thoughtful review of a film. " * 120)[:4000]] * 2}
    while not stop.is_set():
        try:
            if session.post(f"{pod.url}/api/v1/predict", json=body, timeout=15).ok:
                sent["http"] += 2
        except requests.RequestException:
            time.sleep(0.05)


def test_the_spool_stays_within_its_bound_through_an_outage_under_http_and_grpc_load(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    """PREDICTION_SPOOL_MAX_MB=8 for the whole directory, the database stopped, 4 kB texts over
    HTTP and gRPC (2 workers + 2 gRPC fronts, four files), a worker SIGKILLed mid-way (its file
    taken over): `du` of the spool directory never goes past 8 MB; what did not fit is dropped
    and counted, and what was kept is written once the database is back."""
    publish(seed=1)
    url = postgres.new_database()
    run(["imdb-sentiment", "db", "upgrade"], ROOT, {"DATABASE_URL": url})
    grpc_port = free_port()
    pod = Pod(tmp_path / "pod", {
        "DATABASE_URL": url, "DATABASE_MIGRATE": "off", "PREDICTION_LOG_TEXT": "true",
        "PREDICTION_LOG_RATE": "0", "PREDICTION_SPOOL_MAX_MB": "8", "GRPC_PORT": str(grpc_port),
        "GRPC_WORKERS": "2", "SHADOW_SAMPLE": "0",
    })  # fmt: skip
    pod.start()
    spool_dir = tmp_path / "pod" / "spool"
    bound = 8 * 2**20
    stop, sent = threading.Event(), Counter[str]()
    try:
        postgres.stop()
        clients = [threading.Thread(target=http_client, args=(pod, stop, sent)) for _ in range(2)]
        clients += [threading.Thread(target=grpc_client, args=(pod, grpc_port, stop, sent))
                    for _ in range(2)]  # fmt: skip
        for thread in clients:
            thread.start()
        peak, started, killed = 0, time.monotonic(), False
        while time.monotonic() - started < 40:
            peak = max(peak, du(spool_dir))
            if not killed and time.monotonic() - started > 15:
                os.kill(pod.workers()[0], signal.SIGKILL)  # its replacement takes its file over
                killed = True
            time.sleep(0.05)
        stop.set()
        for thread in clients:
            thread.join(timeout=30)
        peak = max(peak, du(spool_dir))
        dropped = metric(pod.url, "prediction_spool_dropped_records_total")
        waiting = metric(pod.url, "prediction_spool_records")
        print(f"\nspool bound run: peak du {peak / 2**20:.2f} MB of 8; sent {dict(sent)}; "
              f"{waiting:.0f} waiting, {dropped:.0f} dropped (full)")  # fmt: skip
        assert peak <= bound, f"the spool directory reached {peak} bytes"
        assert dropped > 0 and waiting > 500 and sent["grpc"] > 0 and sent["http"] > 0
        assert len(list(spool_dir.glob("spool.v3-*.db"))) <= 4  # one file per process
        postgres.start()
        wait_until(lambda: metric(pod.url, "prediction_spool_records") == 0, 120,
                   "the spool was not written once the database was back")  # fmt: skip
        engine = create_engine(url)
        with engine.connect() as db:
            count = db.execute(text("SELECT COUNT(*) FROM predictions")).scalar_one()
        engine.dispose()
        assert count >= waiting
    finally:
        stop.set()
        with contextlib.suppress(subprocess.CalledProcessError):
            postgres.start()
        pod.stop()


def test_readiness_answers_quickly_with_100k_records_spooled(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    """Probes read the spool's published totals, not its records: with 100,000 records waiting
    (the database away) /readyz answers within 5 ms at the 99th percentile."""
    publish(seed=1)
    url = postgres.new_database()
    run(["imdb-sentiment", "db", "upgrade"], ROOT, {"DATABASE_URL": url})
    pod = Pod(tmp_path / "pod", {"DATABASE_URL": url, "DATABASE_MIGRATE": "off",
                                 "PREDICTION_LOG_RATE": "0", "PREDICTION_SPOOL_MAX_MB": "512",
                                 "SHADOW_SAMPLE": "0", "MAX_BATCH_SIZE": "256"})  # fmt: skip
    pod.start()
    try:
        postgres.stop()
        session = requests.Session()
        body = {"texts": [f"a short review number {i}" for i in range(250)]}
        for _ in range(400):
            assert session.post(f"{pod.url}/api/v1/predict", json=body, timeout=30).ok
        # Each process publishes its totals as its flusher goes round (every few seconds while
        # the database is away): every worker's view is whole within a few seconds.
        # A worker's view is its own file's count and the others' published totals, so one
        # worker can lag another by a flusher round: a dozen reads reach each worker.
        spooled = lambda: requests.get(f"{pod.url}/readyz", timeout=5).json()["store"]["spool"]  # noqa: E731
        whole = lambda: all(spooled()["records"] >= 100_000 for _ in range(12))  # noqa: E731
        wait_until(whole, 30, "the spooled records were not all published")
        times: dict[str, list[float]] = {"/readyz": [], "/healthz": []}
        for _ in range(400):  # interleaved with the cheapest route, its reference
            for path, taken in times.items():
                started = time.perf_counter()
                answer = session.get(f"{pod.url}{path}", timeout=5)
                taken.append(time.perf_counter() - started)
                assert answer.status_code == 200
        wait_until(whole, 30, "a worker's view of the spool lost records")
        ready = session.get(f"{pod.url}/readyz", timeout=5).json()
        assert ready["store"]["spool"]["records"] >= 100_000
        # The server's own time per probe (its access log's duration_ms), beside the client's:
        # the client's includes this shared machine's scheduling noise, which /healthz shows.
        served = [json.loads(line)["duration_ms"] / 1000 for line in pod.log().splitlines()
                  if line.startswith("{") and '"path": "/readyz"' in line]  # fmt: skip
        times["/readyz (server)"] = served[-len(times["/readyz"]) :]
        p50, p99 = ({p: sorted(t)[int(len(t) * q)] for p, t in times.items()} for q in (0.5, 0.99))
        print(
            f"\n{ready['store']['spool']['records']} records spooled: "
            + "; ".join(
                f"{p} p50 {p50[p] * 1000:.2f} ms, p99 {p99[p] * 1000:.2f} ms" for p in times
            )
        )
        assert p99["/readyz (server)"] <= 0.005
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            postgres.start()
        pod.stop()

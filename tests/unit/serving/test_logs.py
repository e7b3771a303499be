"""JSON log lines with the request id; the sampled prediction log, drained on close."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import runpy
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask.testing import FlaskClient
from sklearn.pipeline import Pipeline

from imdb_sentiment import serving
from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.http.context import service_of
from imdb_sentiment.serving.logs import (
    REQUEST_ID,
    RequestIdFilter,
    ServiceJsonFormatter,
    access_fields,
    client_request_id,
    logging_config,
    new_request_id,
)
from imdb_sentiment.serving.predictions import PredictionLog, _RecordFormatter
from imdb_sentiment.serving.service_settings import load_settings
from imdb_sentiment.store.records import PredictionRecord

PREDICT = "/api/v1/predict"


def json_handler(stream: io.StringIO) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ServiceJsonFormatter())
    handler.addFilter(RequestIdFilter())
    return handler


def test_a_log_line_is_one_json_object_with_the_request_id() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test.json")
    logger.addHandler(json_handler(stream))
    token = REQUEST_ID.set("req-1")
    try:
        logger.warning("reload failed: %s", "timeout", extra={"version": "3"})
    finally:
        REQUEST_ID.reset(token)
        logger.handlers.clear()
    line = json.loads(stream.getvalue())
    assert line["message"] == "reload failed: timeout"
    assert line["level"] == "WARNING" and line["logger"] == "test.json"
    assert line["request_id"] == "req-1" and line["version"] == "3" and "time" in line


def test_gunicorn_access_atoms_become_fields() -> None:
    atoms = {
        "m": "POST",
        "U": "/api/v1/predict",
        "q": "",
        "s": "200",
        "B": 181,
        "D": 2625,
        "h": "10.0.0.1",
        "a": "curl/8",
        "{x-request-id}o": "abc",
    }
    fields = access_fields(atoms)
    assert fields["status"] == 200 and fields["duration_ms"] == 2.625 and fields["bytes"] == 181
    assert fields["request_id"] == "abc" and fields["query"] is None
    assert fields["message"] == "POST /api/v1/predict 200"


@pytest.mark.parametrize(
    ("header", "kept"),
    [("abc-123", True), ("a" * 129, False), ("two words", False), ("x\ny", False), (None, False)],
)
def test_callers_ids_are_kept_for_correlation_only_when_sensible(
    header: str | None, kept: bool
) -> None:
    assert client_request_id(header) == (header if kept else None)


@pytest.mark.usefixtures("restore_logging")
def test_the_config_is_what_dictconfig_accepts() -> None:
    for fmt in ("json", "text"):
        logging.config.dictConfig(logging_config(fmt))
    assert logging.getLogger("gunicorn.access").level == logging.INFO
    logging.config.dictConfig(logging_config("json", access_log=False))
    assert logging.getLogger("gunicorn.access").level == logging.WARNING


@pytest.fixture
def logged_client(small_model: Pipeline, tmp_path: Path) -> FlaskClient:
    settings = load_settings(
        prediction_log_rate=1.0, prediction_log_dir=str(tmp_path / "predictions")
    )
    return create_app(settings, model=small_model).test_client()


def records(directory: Path) -> list[dict[str, object]]:
    return [json.loads(line) for f in directory.glob("*.jsonl*") for line in f.open()]


def test_the_servers_id_is_returned_and_keys_the_record_the_callers_is_kept_beside(
    logged_client: FlaskClient, tmp_path: Path
) -> None:
    given = logged_client.post(
        PREDICT, json={"text": "A wonderful film."}, headers={"X-Request-ID": "mine-1"}
    )
    made = logged_client.post(PREDICT, json={"texts": ["Dull.", "Great acting."]})
    ours = given.headers["X-Request-ID"]
    assert ours != "mine-1" and len(ours) == 32  # the server's own, never the caller's
    generated = made.headers["X-Request-ID"]
    assert len(generated) == 32 and generated != ours
    service_of(logged_client.application).prediction_log.close()
    found = records(tmp_path / "predictions")
    assert [r["request_id"] for r in found] == [ours, generated, generated]
    assert [r.get("client_request_id") for r in found] == ["mine-1", None, None]
    first = PredictionRecord.from_json(found[0])
    assert first.client_request_id == "mine-1"
    assert first.text_chars == len("A wonderful film.") and first.text is None  # private
    assert first.label == given.json["label"]  # type: ignore[index]
    assert abs(first.probability - given.json["scores"]["positive"]) < 1e-6  # type: ignore[index]


def test_text_is_logged_only_when_allowed(small_model: Pipeline, tmp_path: Path) -> None:
    settings = load_settings(
        prediction_log_rate=1.0,
        prediction_log_text=True,
        prediction_log_dir=str(tmp_path / "p"),
    )
    app = create_app(settings, model=small_model)
    app.test_client().post(PREDICT, json={"text": "Loved it."})
    service_of(app).prediction_log.close()
    assert [r["text"] for r in records(tmp_path / "p")] == ["Loved it."]


def test_the_sample_rate_holds_and_close_drains_everything(tmp_path: Path) -> None:
    log = PredictionLog(
        load_settings(prediction_log_rate=0.2, prediction_log_dir=str(tmp_path)), seed=7
    )
    drawn = 0
    for i in range(20_000):
        if log.sampled():
            drawn += 1
            log.record(
                PredictionRecord(0.0, str(i), "1", 0.9, "positive", 0.0, 3, 10, text="secret")
            )
    log.close()
    log.close()  # idempotent
    written = records(tmp_path)
    assert len(written) == drawn  # nothing queued is lost
    assert abs(drawn / 20_000 - 0.2) < 0.02  # binomial sd is 0.003
    assert all("text" not in r for r in written)


def test_rate_zero_never_samples() -> None:
    log = PredictionLog(load_settings(prediction_log_rate=0.0))
    assert not log.enabled and not any(log.sampled() for _ in range(1000))


class SlowFile(logging.FileHandler):
    """A disk that lags behind the requests: records are still queued when the worker exits."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.setFormatter(_RecordFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        time.sleep(0.002)
        super().emit(record)


def test_gunicorn_worker_exit_hook_writes_out_the_queue(
    small_model: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook gunicorn.conf.py gives gunicorn, called as gunicorn calls it in a worker."""
    # The config sets both; set here first so that monkeypatch restores them afterwards.
    (tmp_path / "prom").mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    monkeypatch.setenv("MODEL_SYNC", "inline")
    config = runpy.run_path(str(Path(serving.__file__).parent / "gunicorn.conf.py"))
    monkeypatch.setattr(
        PredictionLog, "_open_handler", lambda self: SlowFile(tmp_path / "predictions.jsonl")
    )
    app = create_app(load_settings(prediction_log_rate=1.0), model=small_model)
    client = app.test_client()
    for _ in range(20):
        client.post(PREDICT, json={"texts": ["Good.", "Bad.", "Fine."]})
    config["worker_exit"](object(), SimpleNamespace(wsgi=app))
    assert len(records(tmp_path)) == 60


ATOMS = {"m": "POST", "U": "/api/v1/predict", "q": "", "s": "200", "B": 181, "D": 2625,
         "h": "10.0.0.1", "a": "curl/8 é", "{x-request-id}o": "abc"}  # fmt: skip


@pytest.mark.parametrize(
    "atoms",
    [ATOMS, {**ATOMS, "q": "a=1", "B": None, "a": None, "{x-request-id}o": None}, {"m": "GET"}],
)
def test_the_direct_access_line_is_the_generic_formatters_line(atoms: dict[str, object]) -> None:
    record = logging.LogRecord("gunicorn.access", logging.INFO, "", 0, "%(m)s", (atoms,), None)
    RequestIdFilter().filter(record)
    formatter = ServiceJsonFormatter()
    direct = formatter.format(record)
    generic = super(ServiceJsonFormatter, formatter).format(record)
    assert direct == generic
    assert json.loads(direct)["event"] == "access"


def test_server_ids_are_distinct_unguessable_and_rekeyed_after_a_fork() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(len(i) == 32 for i in ids)
    int(ids[0], 16)  # hex, as uuid4().hex was
    # No structure to guess from: no shared prefix, no counter, digits spread evenly.
    assert len({i[:8] for i in ids}) == 1000
    digits = "".join(ids)
    assert max(digits.count(d) for d in "0123456789abcdef") < 1.2 * len(digits) / 16
    read, write = os.pipe()
    pid = os.fork()  # as gunicorn forks its workers: a key of its own
    if pid == 0:
        os.write(write, " ".join(new_request_id() for _ in range(1000)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64_000).decode().split()
    os.close(read)
    os.close(write)
    assert len(child) == 1000 and not set(child) & set(ids)

"""Structured logs: one JSON object per line from the app, gunicorn (error and access logs) and
the registry sync, each line about a request carrying that request's id.

The request id lives in a context variable that the HTTP layer sets per request
(`http.app`), so this module needs no Flask and `server` (master, model sync) and the app
share one configuration (`logging_config`). JSON comes from python-json-logger; gunicorn's
access records are turned into fields (method, path, status, duration) instead of a CLF string
(`access_log.JsonAccessLogger` writes them; this module loads no gunicorn, so the gRPC front
shares it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["json", "text"]

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
CLIENT_REQUEST_ID: ContextVar[str | None] = ContextVar("client_request_id", default=None)
REQUEST_ID_HEADER = "X-Request-ID"
# What a caller may send as its own id: short, printable, no separators that break log parsing.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
ACCESS_LOGGER = "gunicorn.access"
# The access record's message, from the atoms `JsonAccessLogger` computes.
ACCESS_MESSAGE = "%(m)s %(U)s %(s)s"
REQUEST_ID_NAME = REQUEST_ID_HEADER.lower()
REQUEST_ID_ATOM = f"{{{REQUEST_ID_NAME}}}o"  # the response's: this server's id
CLIENT_ID_ATOM = f"{{{REQUEST_ID_NAME}}}i"  # the request's: the caller's own
CLIENT_ID_ENVIRON = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")


def new_request_id() -> str:
    """This server's id for a request: the key its prediction records are stored under and
    the one feedback names, so nobody else chooses it and nobody can guess one."""
    return _ids.next()


def client_request_id(header: str | None) -> str | None:
    """The caller's own X-Request-ID, kept for correlation (logs, the stored record) and never
    used as a key; None unless it is a sensible token (it is written to every log line)."""
    if header is not None and _VALID_ID.match(header):
        return header
    return None


class _RequestIds:
    """Unguessable ids, 32 hex digits: a keyed BLAKE2b of a per-process counter, the 256-bit key
    drawn from the OS once per process (again after a fork). As unpredictable as uuid4 to anyone
    without the key, and unique across processes (distinct keys) at a fraction of its cost:
    uuid4 reads the OS's random source on every request."""

    def __init__(self) -> None:
        self._pid = 0
        self._key = b""
        self._count = 0

    def next(self) -> str:
        if self._pid != os.getpid():
            self._pid, self._key, self._count = os.getpid(), os.urandom(32), 0
        self._count += 1
        counter = self._count.to_bytes(8, "little")
        return hashlib.blake2b(counter, key=self._key, digest_size=16).hexdigest()


_ids = _RequestIds()


class RequestIdFilter(logging.Filter):
    """Stamps the current request's id (if any), and the caller's own, on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        if getattr(record, "client_request_id", None) is None:
            record.client_request_id = CLIENT_REQUEST_ID.get()
        return True


class ServiceJsonFormatter(JsonFormatter):
    """time, level, logger, process, message, request_id, plus any `extra=` fields."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(process)d %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )

    def format(self, record: logging.LogRecord) -> str:
        if record.name == ACCESS_LOGGER and isinstance(record.args, dict) and not record.exc_info:
            return access_line(record)
        return super().format(record)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        if record.name == ACCESS_LOGGER and isinstance(record.args, dict):
            log_data.update(access_fields(record.args))
        for key in [k for k, v in log_data.items() if v is None]:
            del log_data[key]  # absent, not null: shorter lines, simpler queries


def access_fields(atoms: dict[str, Any]) -> dict[str, Any]:
    """gunicorn's access-log atoms as fields; the request id is the response's header (the id
    this server made), the caller's own X-Request-ID is `client_request_id`."""

    def atom(key: str) -> Any:
        value = atoms.get(key)
        return None if value in (None, "-", "") else value

    status = atom("s")
    duration = atom("D")  # microseconds
    sent = atom("B")
    return {
        "event": "access",
        "message": f"{atom('m')} {atom('U')} {status}",
        "method": atom("m"),
        "path": atom("U"),
        "query": atom("q"),
        "status": int(status) if str(status).isdigit() else status,
        "bytes": int(sent) if str(sent).isdigit() else None,
        "duration_ms": round(int(duration) / 1000, 3) if str(duration).isdigit() else None,
        "remote": atom("h"),
        "user_agent": atom("a"),
        "request_id": atom(REQUEST_ID_ATOM),
        "client_request_id": atom(CLIENT_ID_ATOM),
    }


def access_line(record: logging.LogRecord) -> str:
    """The JSON line `ServiceJsonFormatter` writes for a gunicorn access record, built directly:
    the generic path costs ~12 µs a request (tests/unit/serving/test_logs.py holds the two
    lines equal)."""
    assert isinstance(record.args, dict)
    fields = access_fields(record.args)
    body: dict[str, Any] = {
        "level": record.levelname,
        "logger": record.name,
        "process": record.process,
        "message": fields.pop("message"),
        "request_id": fields.pop("request_id"),
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
        **fields,
    }
    return json.dumps({k: v for k, v in body.items() if v is not None})


def logging_config(fmt: LogFormat = "json", access_log: bool = True) -> dict[str, Any]:
    """A `logging.config.dictConfig` for every process of the service: gunicorn applies it in
    the master and each worker (`logconfig_dict`), the sync process calls `configure`."""
    formatter = (
        {"()": f"{__name__}.ServiceJsonFormatter"} if fmt == "json" else {"format": TEXT_FORMAT}
    )
    stdout = ["stdout"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"service": formatter},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "service",
                "filters": ["request_id"],
            }
        },
        "root": {"level": "INFO", "handlers": stdout},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": stdout, "propagate": False},
            ACCESS_LOGGER: {
                "level": "INFO" if access_log else "WARNING",
                "handlers": stdout,
                "propagate": False,
            },
        },
    }


def configure(fmt: LogFormat = "json") -> None:
    """Apply `logging_config` in a process gunicorn does not configure (the sync, `flask run`)."""
    import logging.config

    logging.config.dictConfig(logging_config(fmt))

"""Structured logs: one JSON object per line from the app, gunicorn (error and access logs) and
the registry sync, each line about a request carrying that request's id.

The request id lives in a context variable that the HTTP layer sets per request
(`http.app`), so this module needs no Flask and `gunicorn.conf.py`, `model/sync` and the app
share one configuration (`logging_config`). JSON comes from python-json-logger; gunicorn's
access records are turned into fields (method, path, status, duration) instead of a CLF string.

Imports: the standard library and python-json-logger only.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["json", "text"]

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
REQUEST_ID_HEADER = "X-Request-ID"
# What a caller may send as its own id: short, printable, no separators that break log parsing.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
ACCESS_LOGGER = "gunicorn.access"


def request_id_from(header: str | None) -> str:
    """The caller's id when it is a sensible token, else a fresh one (never trust it blindly:
    it is echoed in a response header and written to every log line)."""
    if header is not None and _VALID_ID.match(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Stamps the current request's id (if any) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class ServiceJsonFormatter(JsonFormatter):
    """time, level, logger, process, message, request_id, plus any `extra=` fields."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(process)d %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        if record.name == ACCESS_LOGGER and isinstance(record.args, dict):
            log_data.update(access_fields(record.args))
        for key in [k for k, v in log_data.items() if v is None]:
            del log_data[key]  # absent, not null: shorter lines, simpler queries


def access_fields(atoms: dict[str, Any]) -> dict[str, Any]:
    """gunicorn's access-log atoms as fields; the request id is the response's header, which
    the app always sets (its own or the caller's)."""

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
        "request_id": atom(f"{{{REQUEST_ID_HEADER.lower()}}}o"),
    }


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

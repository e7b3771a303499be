"""gunicorn's lean JSON access logger: the line it writes, and none when the log is off."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from types import SimpleNamespace

from imdb_sentiment.serving.access_log import JsonAccessLogger
from imdb_sentiment.serving.logs import logging_config


def test_gunicorn_writes_the_json_access_line_through_the_lean_logger(
    restore_logging: None,
) -> None:
    from gunicorn.config import Config

    config = Config()
    config.set("logconfig_dict", logging_config("json"))
    logger = JsonAccessLogger(config)
    stream = io.StringIO()
    logging.getLogger("gunicorn.access").handlers[0].setStream(stream)  # type: ignore[attr-defined]
    response = SimpleNamespace(
        status="201 CREATED", sent=57, headers=[("Content-Type", "x"), ("X-Request-ID", "r-9")]
    )
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/feedback", "QUERY_STRING": "",
               "REMOTE_ADDR": "10.1.2.3", "HTTP_USER_AGENT": "kube-probe/1.30",
               "HTTP_X_REQUEST_ID": "caller-7"}  # fmt: skip
    logger.access(response, None, environ, timedelta(seconds=1, microseconds=2500))
    line = json.loads(stream.getvalue())
    assert line["client_request_id"] == "caller-7"  # the caller's, beside the server's
    assert line["message"] == "POST /api/v1/feedback 201" and line["status"] == 201
    assert line["request_id"] == "r-9" and line["duration_ms"] == 1002.5 and line["bytes"] == 57
    assert line["remote"] == "10.1.2.3" and line["user_agent"] == "kube-probe/1.30"
    assert "query" not in line and line["logger"] == "gunicorn.access"


def test_no_access_line_when_the_access_log_is_off(restore_logging: None) -> None:
    from gunicorn.config import Config

    config = Config()
    config.set("logconfig_dict", logging_config("json", access_log=False))
    logger = JsonAccessLogger(config)
    stream = io.StringIO()
    logging.getLogger("gunicorn.access").handlers[0].setStream(stream)  # type: ignore[attr-defined]
    response = SimpleNamespace(status="200 OK", sent=2, headers=[])
    logger.access(response, None, {"REQUEST_METHOD": "GET"}, timedelta(microseconds=5))
    assert stream.getvalue() == ""

"""API errors: every failure is a 4xx (or 503) with {"error": code, "detail": message}, plus
MLflow's {"error_code", "message"} so clients of MLflow's scoring server understand it too.

Bodies name the problem and never carry internals (URLs, paths, exception text): those go to
the log. Request bodies are parsed defensively: size limits whatever the transfer encoding,
nesting depth and number size bounded, so no input reaches a 500.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from flask import Request


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return error_body(self.status, self.code, self.detail)


# MLflow's error codes (mlflow.protos.databricks_pb2) by HTTP status.
_MLFLOW_CODES = {503: "TEMPORARILY_UNAVAILABLE", 500: "INTERNAL_ERROR", 404: "ENDPOINT_NOT_FOUND"}
MAX_JSON_DEPTH = 32  # the API's payloads nest 4 levels at most
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def error_body(status: int, code: str, detail: str) -> dict[str, str]:
    mlflow_code = _MLFLOW_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
    return {"error": code, "detail": detail, "error_code": mlflow_code, "message": detail}


def read_body(request: Request, limit: int) -> bytes:
    """The body, at most `limit` bytes, whether it came with a Content-Length or chunked
    (Werkzeug's own limit only sees Content-Length: a chunked body was silently cut)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise too_large(limit)
    return raw


def too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"request body is larger than {limit} bytes")


def decode_utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_utf8", f"body is not valid UTF-8 (byte {exc.start})") from exc


def read_json(request: Request, limit: int) -> Any:
    """Strictly parse a JSON body: right content type, size, valid UTF-8, valid JSON."""
    if not request.mimetype or request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    return parse_json(read_body(request, limit))


def parse_json(raw: bytes) -> Any:
    text = decode_utf8(raw)
    if not text.strip():
        raise ApiError(400, "malformed_json", "request body is empty")
    _check_depth(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, "malformed_json", f"invalid JSON: {exc.msg} at position {exc.pos}"
        ) from exc
    except (ValueError, RecursionError) as exc:  # e.g. an integer of 5,000 digits
        raise ApiError(400, "malformed_json", "invalid JSON: a number is too large") from exc


def _check_depth(text: str) -> None:
    """Refuse deep nesting before parsing: json.loads recurses once per level (100,000 `[`
    raised RecursionError). Strings are cut out first, in C, so brackets in texts do not count."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return
    brackets = _BRACKET.findall(_STRING.sub("", text))
    deepest = max(accumulate(1 if b in "[{" else -1 for b in brackets), default=0)
    if deepest > MAX_JSON_DEPTH:
        raise ApiError(400, "too_deeply_nested", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")

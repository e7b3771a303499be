"""API errors: every failure is a 4xx (or 503) with {"error": code, "detail": message}."""

from __future__ import annotations

import json
from typing import Any

from flask import Request


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail

    def body(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}


def read_json(request: Request) -> Any:
    """Strictly parse a JSON body: right content type, valid UTF-8, valid JSON."""
    if not request.mimetype or request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = request.get_data(cache=True)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_utf8", f"body is not valid UTF-8 (byte {exc.start})") from exc
    if not text.strip():
        raise ApiError(400, "malformed_json", "request body is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, "malformed_json", f"invalid JSON: {exc.msg} at position {exc.pos}"
        ) from exc


def check_text(value: Any, max_chars: int, field: str = "text") -> str:
    if value is None:
        raise ApiError(422, "missing_text", f"'{field}' is required and must be a string")
    if not isinstance(value, str):
        kind = type(value).__name__
        raise ApiError(422, "invalid_type", f"'{field}' must be a string, got {kind}")
    if not value.strip():
        raise ApiError(422, "empty_text", f"'{field}' is empty or only whitespace")
    if len(value) > max_chars:
        raise ApiError(
            413, "text_too_long", f"'{field}' has {len(value)} characters; the limit is {max_chars}"
        )
    return value


def check_batch(value: Any, max_chars: int, max_batch: int) -> list[str]:
    if not isinstance(value, list):
        raise ApiError(422, "invalid_type", "'texts' must be a list of strings")
    if not value:
        raise ApiError(422, "empty_batch", "'texts' is an empty list")
    if len(value) > max_batch:
        raise ApiError(
            413, "batch_too_large", f"'texts' has {len(value)} items; the limit is {max_batch}"
        )
    return [check_text(item, max_chars, f"texts[{i}]") for i, item in enumerate(value)]

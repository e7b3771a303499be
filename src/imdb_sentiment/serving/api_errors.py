"""What a request did wrong, as every front reports it: an HTTP status, a short code and a
message naming the problem. The HTTP app answers it as JSON (`http.app`), the gRPC server as the
matching status (`grpc.service`).

Messages never carry internals (URLs, paths, exception text): those go to the log.
"""

from __future__ import annotations


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}

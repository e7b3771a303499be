"""API errors: every failure is a 4xx (or 503) with {"error": code, "detail": message}, plus
MLflow's {"error_code", "message"} so clients of MLflow's scoring server understand it too.

Bodies name the problem and never carry internals (URLs, paths, exception text): those go to
the log.
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

    def body(self) -> dict[str, str]:
        return error_body(self.status, self.code, self.detail)


# MLflow's error codes (mlflow.protos.databricks_pb2) by HTTP status.
_MLFLOW_CODES = {503: "TEMPORARILY_UNAVAILABLE", 500: "INTERNAL_ERROR", 404: "ENDPOINT_NOT_FOUND"}


def error_body(status: int, code: str, detail: str) -> dict[str, str]:
    mlflow_code = _MLFLOW_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
    return {"error": code, "detail": detail, "error_code": mlflow_code, "message": detail}

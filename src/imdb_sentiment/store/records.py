"""The prediction record: what the service keeps about a prediction (in the prediction store,
and sampled in the JSONL prediction log), and what `imdb-sentiment drift` and the feedback path
read back. One definition for every side.

Standard library only: service workers build these on every sampled prediction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

EVENT = "prediction"


class PredictionRecord(NamedTuple):
    """Immutable; a NamedTuple rather than a frozen dataclass because the service builds one
    per prediction, and a frozen dataclass of these 14 fields takes ~5x as long to build."""

    time: float  # UNIX seconds; ISO 8601 (UTC) in the JSON line
    request_id: str | None  # this server's id: the record's key, what feedback names
    model_version: str | None
    probability: float  # P(positive), whichever label was predicted
    label: str
    unknown_share: float  # share of the review's tokens the model has never seen
    tokens: int
    text_chars: int
    text: str | None = None  # only when PREDICTION_LOG_TEXT allows it
    item: int = 0  # index in a batch request
    client_request_id: str | None = None  # the caller's own X-Request-ID: correlation only
    # The shadowed candidate's answer on the same text; None when the request was not shadowed.
    shadow_version: str | None = None
    shadow_probability: float | None = None
    shadow_label: str | None = None

    def as_json(self) -> dict[str, Any]:
        body = {"event": EVENT, **self._asdict(), "time": iso(self.time)}
        for optional in OPTIONAL:
            if body[optional] is None:
                del body[optional]
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> PredictionRecord:
        """A record from a parsed log line; KeyError/TypeError/ValueError when it is not one."""
        return cls(
            time=datetime.fromisoformat(str(body["time"])).timestamp(),
            request_id=body.get("request_id"),
            model_version=body.get("model_version"),
            probability=float(body["probability"]),
            label=str(body["label"]),
            unknown_share=float(body["unknown_share"]),
            tokens=int(body["tokens"]),
            text_chars=int(body["text_chars"]),
            text=body.get("text"),
            item=int(body.get("item", 0)),
            client_request_id=body.get("client_request_id"),
            shadow_version=body.get("shadow_version"),
            shadow_probability=_float_or_none(body.get("shadow_probability")),
            shadow_label=body.get("shadow_label"),
        )


FIELDS = PredictionRecord._fields
OPTIONAL = ("text", "client_request_id", "shadow_version", "shadow_probability", "shadow_label")


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")

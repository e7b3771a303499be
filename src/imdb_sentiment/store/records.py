"""The prediction record: what the service keeps about a prediction (in the prediction store,
and sampled in the JSONL prediction log), and what `imdb-sentiment drift` and the feedback path
read back. One definition for every side.

Also the record's other forms, the store's mappers: its database row (`as_row`, `from_row`), its
spooled row (`as_spooled`) and a request's records as one spool body (`encode_request`: one JSON
object by column; `decode_request`, `body_shape` and `shape_fields` read this format's bodies and
the previous one's, an array of objects). Nothing heavier than orjson: service workers build
these on every prediction.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

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


# Columns a spooled record leaves out when they are NULL (most records: no text kept, no
# caller's id, not shadowed): less JSON to write, and to read back.
SPARSE = ("text", "client_request_id", "shadow_version", "shadow_probability", "shadow_label")


def as_spooled(r: PredictionRecord) -> dict[str, Any]:
    """A record as the spool keeps it: its row, without the SPARSE columns that are NULL."""
    row = as_row(r)
    for name in SPARSE:
        if row[name] is None:
            del row[name]
    return row


def as_row(r: PredictionRecord) -> dict[str, Any]:
    return {
        "request_id": r.request_id,
        "item": r.item,
        "created": r.time,
        "model_version": r.model_version,
        "probability": r.probability,
        "label": r.label,
        "text": storable(r.text),
        "unknown_share": r.unknown_share,
        "tokens": r.tokens,
        "text_chars": r.text_chars,
        "client_request_id": r.client_request_id,
        "shadow_version": r.shadow_version,
        "shadow_probability": r.shadow_probability,
        "shadow_label": r.shadow_label,
    }


def storable(value: str | None) -> str | None:
    """A text as every database stores it: NUL (which PostgreSQL's text cannot hold) and lone
    surrogates (which no encoding can) become U+FFFD. The review was scored as it came; the
    stored copy is for people and retraining, where the replacement character means the same."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: each of their bytes becomes U+FFFD
        value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value


def from_row(row: Any) -> PredictionRecord:
    """A record as the database returns it (a mapping by column)."""
    return PredictionRecord(
        time=float(row["created"]),
        request_id=row["request_id"],
        item=int(row["item"]),
        model_version=row["model_version"],
        probability=float(row["probability"]),
        label=row["label"],
        unknown_share=float("nan") if row["unknown_share"] is None else row["unknown_share"],
        tokens=-1 if row["tokens"] is None else int(row["tokens"]),
        text_chars=-1 if row["text_chars"] is None else int(row["text_chars"]),
        text=row["text"],
        client_request_id=row.get("client_request_id"),
        shadow_version=row.get("shadow_version"),
        shadow_probability=row.get("shadow_probability"),
        shadow_label=row.get("shadow_label"),
    )


# --- a request's records as one spool body ------------------------------------------------
_MISSING = object()


def encode_request(records: list[dict[str, Any]]) -> str:
    """One request's records as a spool body: `{"k": [varying fields], "c": {shared fields},
    "r": [[a record's varying values, in k's order], ...]}`, `k` first (the flusher reads the
    body's shape from its start). A field is shared when every record has it with the same
    value and type; a record without a varying field has null there."""
    shared: dict[str, Any] = {}
    varying: dict[str, list[Any]] = {}
    for name in dict.fromkeys(itertools.chain.from_iterable(records)):  # first seen, first
        column = [r.get(name, _MISSING) for r in records]
        value = column[0]
        # list.count and set(map(type)) compare in C: a request's 100 records in a few µs
        if column.count(value) == len(column) and len(set(map(type, column))) == 1:
            shared[name] = value
        else:
            varying[name] = [None if v is _MISSING else v for v in column]
    rows = list(zip(*varying.values(), strict=True)) if varying else [()] * len(records)
    body = {"k": list(varying), "c": shared, "r": rows}
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY).decode()  # numpy: as json did


def decode_request(body: Any) -> list[dict[str, Any]]:
    """A parsed spool body's records, each a dict by field (a v2 body is already a list)."""
    if isinstance(body, list):
        return body
    shared, names = body["c"], body["k"]
    return [{**shared, **dict(zip(names, values, strict=True))} for values in body["r"]]


def body_shape(body: str) -> str:
    """The start of a body that says its format and layout: `{"k":[…]` for this format's
    (field names only: no bracket inside), `[` for a v2 body."""
    return "[" if body.startswith("[") else body[: body.index("]") + 1]


def shape_fields(shape: str) -> list[str] | None:
    """The varying fields, in their positions, of bodies of this shape; None for v2 bodies
    (objects keyed by field)."""
    return None if shape == "[" else list(json.loads(shape[len('{"k":') :]))


def by_request(rows: list[dict[str, Any]]) -> list[tuple[Any, list[dict[str, Any]]]]:
    """Consecutive rows of one request id together (a request's records share one)."""
    return [(key, list(group)) for key, group in itertools.groupby(rows, lambda r: r["request_id"])]

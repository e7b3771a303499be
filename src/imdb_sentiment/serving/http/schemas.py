"""Request bodies, from bytes to validated values. Read and parsed defensively: size limits
whatever the transfer encoding, nesting depth and number size bounded, so no input reaches a
500. Then the JSON API's request schemas: the one definition that validates requests *and* writes
the OpenAPI document's request bodies (`serving.http.openapi`), so the two cannot drift apart.

Limits come from the settings (MAX_TEXT_CHARS, MAX_BATCH_SIZE) through the scoring service's
text types (`serving.scoring`), so the models are built per app (`Schemas.build(settings)`).
Validation failures become `ApiError`s with stable codes: 422 for a field that is wrong, 413 for
one that is too large.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Annotated, Any, Literal

from flask import Request
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from imdb_sentiment.core.labels import Label
from imdb_sentiment.serving.api_errors import ApiError
from imdb_sentiment.serving.http.responses import OipOutputName, Strict
from imdb_sentiment.serving.scoring import batch_limits, text_limits
from imdb_sentiment.serving.service_settings import Settings

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "inputs", "instances")
Params = dict[str, Any] | None


def _integral(value: Any) -> Any:
    """JSON Schema counts 194.0 as an integer (a number with no fraction): so does the API.
    Strings and fractional numbers still fail the strict check that follows."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class Schemas:
    """Every request shape of the API, with this app's limits."""

    single: type[BaseModel]
    batch: type[BaseModel]
    feedback: tuple[type[BaseModel], type[BaseModel]]  # by request id, by text
    invocation: dict[str, type[BaseModel]]
    oip_infer: type[BaseModel]
    texts: TypeAdapter[list[str]]
    text: TypeAdapter[str]

    @classmethod
    def build(cls, settings: Settings) -> Schemas:
        text = Annotated[str, text_limits(settings)]
        texts = Annotated[list[text], batch_limits(settings)]

        class PredictText(Strict):
            """One review."""

            text: text
            explain: bool = False

        class PredictTexts(Strict):
            """A batch of reviews."""

            texts: texts
            explain: bool = False

        class FeedbackById(Strict):
            """The true label of an earlier prediction: its `request_id` (the id this server
            made, returned in the X-Request-ID header of the prediction's response) and, for a
            batch, its `item`."""

            request_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
            item: Annotated[int, BeforeValidator(_integral)] = Field(
                0, ge=0, lt=settings.service.max_batch_size
            )
            label: Label

        class FeedbackByText(Strict):
            """The true label of a text, which the current model then scores."""

            text: text
            label: Label

        # MLflow's scoring protocol (`mlflow models serve`): one of four shapes, plus optional
        # `params` (accepted and ignored: this model takes none). Every cell is a review: the
        # model's signature is one string column.
        batch = settings.service.max_batch_size
        row = text | Annotated[list[text], Field(min_length=1)]
        record = Annotated[dict[str, text], Field(min_length=1)]
        instance = text | Annotated[list[text], Field(min_length=1, max_length=1)] | record
        column = Annotated[dict[str, texts], Field(min_length=1, max_length=1)]
        values = text | Annotated[list[instance], Field(min_length=1, max_length=batch)] | column

        class DataframeSplit(Strict):
            columns: Annotated[list[str], Field(min_length=1)] | None = None
            index: list[int | str] | None = None
            data: Annotated[list[row], Field(min_length=1, max_length=batch)]

        class SplitPayload(Strict):
            dataframe_split: DataframeSplit
            params: Params = None

        class RecordsPayload(Strict):
            dataframe_records: Annotated[list[record], Field(min_length=1, max_length=batch)]
            params: Params = None

        class InputsPayload(Strict):
            inputs: values
            params: Params = None

        class InstancesPayload(Strict):
            instances: values
            params: Params = None

        # The Open Inference Protocol's inference request, as this model takes it: one BYTES
        # tensor of texts, flat or nested row-major ([n] or [n, 1]). That shape[0] counts the
        # texts is checked after (`oip.infer_texts`): JSON Schema cannot relate two fields.
        nested = Annotated[list[text], Field(min_length=1, max_length=1)]

        class OipInputTensor(Strict):
            name: str
            shape: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=2)]
            datatype: Literal["BYTES"]
            data: texts | Annotated[list[nested], Field(min_length=1, max_length=batch)]
            parameters: Params = None

        class OipRequestedOutput(Strict):
            name: OipOutputName
            parameters: Params = None

        class OipInferRequest(BaseModel):
            # Fields beyond the specification's are ignored, as OIP servers do: the kserve SDK
            # sends `model_name`, other clients more.
            model_config = ConfigDict(extra="ignore", strict=True)

            id: str | None = None
            parameters: Params = None
            inputs: Annotated[list[OipInputTensor], Field(min_length=1, max_length=1)]
            outputs: Annotated[list[OipRequestedOutput], Field(min_length=1)] | None = None

        return cls(
            single=PredictText,
            batch=PredictTexts,
            feedback=(FeedbackById, FeedbackByText),
            invocation={
                "dataframe_split": SplitPayload,
                "dataframe_records": RecordsPayload,
                "inputs": InputsPayload,
                "instances": InstancesPayload,
            },
            oip_infer=OipInferRequest,
            texts=TypeAdapter(texts),
            text=TypeAdapter(text),
        )

    # --- /api/v1/predict ---------------------------------------------------------------------
    def predict_request(self, body: Any) -> tuple[list[str], bool, bool]:
        """(texts, explain, single) of a /api/v1/predict body."""
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_type", "body must be a JSON object with 'text' or 'texts'")
        if ("text" in body) == ("texts" in body):
            raise ApiError(422, "missing_text", "send exactly one of 'text' (a string) or 'texts'")
        model = self.single if "text" in body else self.batch
        parsed = validate(model, body)
        if "text" in body:
            return [parsed.text], parsed.explain, True  # type: ignore[attr-defined]
        return list(parsed.texts), parsed.explain, False  # type: ignore[attr-defined]

    # --- /api/v1/feedback --------------------------------------------------------------------
    def feedback_request(self, body: Any) -> tuple[str | None, int, str | None, Label]:
        """(request_id, item, text, label) of a /api/v1/feedback body."""
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_type", "body must be a JSON object")
        if ("request_id" in body) == ("text" in body):
            raise ApiError(422, "missing_reference", "send exactly one of 'request_id' or 'text'")
        by_id, by_text = self.feedback
        if "text" in body:
            parsed: Any = validate(by_text, body)
            return None, 0, parsed.text, parsed.label
        parsed = validate(by_id, body)
        return parsed.request_id, parsed.item, None, parsed.label

    # --- /v2/models/{name}/infer (the Open Inference Protocol) --------------------------------
    def check_oip_infer(self, body: Any) -> None:
        """A well-formed OIP inference request, else the protocol's 400 (413 when too large,
        422 for a text without characters, as on the other routes)."""
        try:
            self.oip_infer.model_validate(body)
        except ValidationError as exc:
            error = _api_error(exc)
            if error.status == 422 and error.code != "empty_text":
                raise ApiError(400, error.code, error.detail) from exc
            raise error from exc

    def check_text(self, value: Any, field: str = "text") -> str:
        try:
            return self.text.validate_python(value)
        except ValidationError as exc:
            raise _api_error(exc, prefix=field) from exc

    # --- /invocations ------------------------------------------------------------------------
    def invocation_texts(self, body: Any) -> list[str]:
        """The texts of an MLflow scoring-protocol JSON payload."""
        keys = [k for k in MLFLOW_KEYS if isinstance(body, dict) and k in body]
        if len(keys) != 1:
            raise ApiError(
                422,
                "invalid_payload",
                "send exactly one of dataframe_split, dataframe_records, inputs or instances",
            )
        payload = validate(self.invocation[keys[0]], body)
        return self.check_texts(_texts_of(payload, keys[0]))

    def csv_texts(self, text: str) -> list[str]:
        """The texts of a CSV body (a header row, then one review per row): the column `text`,
        else the first column — as `mlflow models serve` reads it into a one-column frame."""
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
        except csv.Error as exc:
            raise ApiError(422, "invalid_payload", f"invalid CSV: {exc}") from exc
        if len(rows) < 2 or not rows[0]:
            raise ApiError(422, "invalid_payload", "CSV needs a header row and at least one row")
        column = rows[0].index("text") if "text" in rows[0] else 0
        return self.check_texts([row[column] if len(row) > column else None for row in rows[1:]])

    def check_texts(self, values: list[Any]) -> list[str]:
        try:
            return self.texts.validate_python(values)
        except ValidationError as exc:
            raise _api_error(exc, prefix="texts") from exc


def validate(model: type[BaseModel], body: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _api_error(exc) from exc


def _texts_of(payload: Any, key: str) -> list[Any]:
    if key == "dataframe_split":
        split = payload.dataframe_split
        column = split.columns.index("text") if split.columns and "text" in split.columns else 0
        return [_cell(row, column) for row in split.data]
    if key == "dataframe_records":
        return [r.get("text", next(iter(r.values()), None)) for r in payload.dataframe_records]
    values = getattr(payload, key)
    if isinstance(values, dict):  # {"text": [...]}: one named column (the schema says one)
        values = next(iter(values.values()))
    if isinstance(values, str):
        values = [values]
    return [_instance(v) for v in values]


def _cell(row: Any, column: int) -> Any:
    if isinstance(row, list):
        if len(row) <= column:
            raise ApiError(422, "invalid_payload", "a row is shorter than 'columns' says")
        return row[column]
    return row


def _instance(value: Any) -> Any:
    """An instance is a text, a one-element row ["text"], or a record {"text": ...}."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    if isinstance(value, dict):
        return value.get("text", next(iter(value.values()), None))
    return value


Kind = Literal["type", "blank", "long", "many", "few", "extra", "missing"]
_KINDS: dict[str, Kind] = {
    "string_type": "type",
    "bool_type": "type",
    "list_type": "type",
    "dict_type": "type",
    "model_type": "type",
    "model_attributes_type": "type",
    "string_too_short": "blank",
    "string_pattern_mismatch": "blank",
    "string_too_long": "long",
    "too_long": "many",
    "too_short": "few",
    "extra_forbidden": "extra",
    "missing": "missing",
}


def _api_error(exc: ValidationError, prefix: str = "") -> ApiError:
    """The first validation error as an ApiError with the API's codes."""
    error = exc.errors()[0]
    where = _location(prefix, error["loc"])
    kind = _KINDS.get(error["type"], "type")
    limit = (error.get("ctx") or {}).get("max_length")
    if kind == "blank":
        return ApiError(422, "empty_text", f"'{where}' is empty or only whitespace")
    if kind == "long":
        length = len(error["input"]) if isinstance(error["input"], str) else "too many"
        return ApiError(
            413, "text_too_long", f"'{where}' has {length} characters; the limit is {limit}"
        )
    if kind == "many":
        return ApiError(
            413, "batch_too_large", f"'{where}' has more than {limit} items; the limit is {limit}"
        )
    if kind == "few":
        return ApiError(422, "empty_batch", f"'{where}' is empty")
    if kind == "extra":
        return ApiError(422, "unknown_field", f"unknown field '{where}'")
    if kind == "missing":
        return ApiError(422, "missing_text", f"'{where}' is required")
    expected = error["msg"].removeprefix("Input should be ").removeprefix("a ")
    return ApiError(422, "invalid_type", f"'{where}' must be {expected}")


def _location(prefix: str, loc: tuple[int | str, ...]) -> str:
    where = prefix
    for part in loc:
        if isinstance(part, int):
            where += f"[{part}]"
        else:
            where = f"{where}.{part}" if where else str(part)
    return where or "body"


# --- bodies, from bytes to values -------------------------------------------------------
MAX_JSON_DEPTH = 32  # the API's payloads nest 4 levels at most
_BRACKET = re.compile(r"[\[\]{}]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


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

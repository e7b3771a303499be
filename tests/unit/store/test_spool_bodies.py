"""A spool body by column (`encode_request`) holds a request's records exactly: decoded, each
record has every field it had, with its value and type, and null for a field it lacked."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from imdb_sentiment.store.records import (
    body_shape,
    decode_request,
    encode_request,
    shape_fields,
)

FIELDS = ["request_id", "item", "created", "probability", "label", "text", "shadow_version"]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
)  # fmt: skip
RECORDS = st.lists(st.dictionaries(st.sampled_from(FIELDS), VALUES), min_size=1, max_size=6)


def typed(record: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    """A record's non-null fields with their types (1, 1.0 and True are not the same value)."""
    return {k: (type(v), v) for k, v in record.items() if v is not None}


@given(RECORDS)
def test_a_request_decodes_to_its_records(records: list[dict[str, Any]]) -> None:
    body = encode_request(records)
    decoded = decode_request(json.loads(body))
    assert [typed(r) for r in decoded] == [typed(r) for r in records]
    shape = body_shape(body)
    assert json.loads(shape[len('{"k":') :]) == json.loads(body)["k"] == shape_fields(shape)


def test_shared_fields_are_written_once_and_the_rest_by_position() -> None:
    records = [
        {"request_id": "r", "created": 1.5, "item": 0, "probability": 0.25, "label": "negative"},
        {"request_id": "r", "created": 1.5, "item": 1, "probability": 0.75, "label": "positive",
         "text": "kept"},
        {"request_id": "r", "created": 1.5, "item": 2, "probability": 1, "label": "positive"},
    ]  # fmt: skip
    body = json.loads(encode_request(records))
    assert body["c"] == {"request_id": "r", "created": 1.5}
    assert body["k"] == ["item", "probability", "label", "text"]
    assert body["r"][1] == [1, 0.75, "positive", "kept"] and body["r"][0][3] is None
    assert body_shape(encode_request(records)) == '{"k":["item","probability","label","text"]'


def test_one_record_is_all_shared_and_a_v2_body_is_a_list() -> None:
    one = json.loads(encode_request([{"request_id": "r", "item": 0}]))
    assert one == {"k": [], "c": {"request_id": "r", "item": 0}, "r": [[]]}
    assert decode_request(one) == [{"request_id": "r", "item": 0}]
    v2 = [{"request_id": "r", "item": 0}, {"request_id": "r", "item": 1}]
    assert decode_request(v2) == v2 and body_shape(json.dumps(v2)) == "["

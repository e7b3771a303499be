"""Responses encoded by orjson say what Flask's own encoder says, as JSON values."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import uuid
from decimal import Decimal

import pytest
from flask import Flask, jsonify
from hypothesis import given
from hypothesis import strategies as st

from imdb_sentiment.serving.http.json_provider import OrjsonProvider, encode


@dataclasses.dataclass
class Point:
    x: int
    when: dt.date


def apps() -> tuple[Flask, Flask]:
    ours = Flask("ours")
    ours.json = OrjsonProvider(ours)
    flasks = Flask("flasks")
    flasks.json.sort_keys = False  # type: ignore[attr-defined]
    return ours, flasks


def both(value: object) -> tuple[bytes, bytes]:
    bodies = []
    for app in apps():
        with app.app_context():
            response = jsonify(value)
            assert response.mimetype == "application/json"
            bodies.append(response.get_data())
    return bodies[0], bodies[1]


def test_flask_conversions_are_kept() -> None:
    value = {
        "when": dt.datetime(2026, 12, 5, 16, 30, tzinfo=dt.UTC),
        "day": dt.date(2026, 12, 5),
        "id": uuid.UUID(int=7),
        "amount": Decimal("1.10"),
        "point": Point(3, dt.date(2020, 1, 2)),
        7: "an int key",
        "text": "Amélie — 東京 \u2028",
    }
    ours, flasks = both(value)
    assert json.loads(ours) == json.loads(flasks)
    assert json.loads(ours)["when"] == "Sat, 05 Dec 2026 16:30:00 GMT"  # HTTP date, not ISO
    assert list(json.loads(ours)) == list(json.loads(flasks))  # insertion order, not sorted
    assert ours.count(b"\n") == 1 and b'": ' not in ours and b', "' not in ours  # compact


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_any_json_value_reads_back_the_same(value: object) -> None:
    ours, flasks = both(value)
    assert json.loads(ours) == json.loads(flasks)


def test_non_finite_floats_are_null_not_invalid_json() -> None:
    ours, _ = both({"p": math.nan, "q": math.inf})
    assert json.loads(ours, parse_constant=pytest.fail) == {"p": None, "q": None}


def test_debug_responses_are_indented() -> None:
    ours, _ = apps()
    ours.debug = True
    with ours.app_context():
        assert jsonify({"a": [1]}).get_data() == b'{\n  "a": [\n    1\n  ]\n}\n'
    assert encode({"a": 1}) == b'{"a":1}'

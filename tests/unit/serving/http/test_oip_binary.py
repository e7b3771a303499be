"""Triton's binary tensor data extension and the gRPC protocol's tensors, as pure functions:
BYTES elements and FP64 data round-trip; what does not add up is an error naming the problem;
which outputs go binary follows the request's parameters."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imdb_sentiment.serving.grpc.messages import TensorError, fill_outputs, request_texts
from imdb_sentiment.serving.http.oip_binary import (
    BinaryDataError,
    attach_inputs,
    binary_outputs,
    encode_outputs,
    split_body,
)
from imdb_sentiment.serving.tensors import TensorDataError, bytes_elements, encode


@given(st.lists(st.text(), max_size=20))
def test_bytes_elements_round_trip_any_text(texts: list[str]) -> None:
    assert bytes_elements(encode(texts, "BYTES"), len(texts)) == texts


@pytest.mark.parametrize(
    ("buffer", "count", "problem"),
    [
        (b"\x05\x00\x00\x00abc", 1, "element 0 says 5 bytes"),
        (b"\x01\x00", 1, "ends before element 0"),
        (b"\x01\x00\x00\x00a\x00", 1, "more than the shape's 1"),
        (b"\x02\x00\x00\x00\xff\xfe", 1, "not UTF-8"),
        (b"", 1, "ends before element 0"),
    ],
)
def test_bad_bytes_elements_say_what_is_wrong(buffer: bytes, count: int, problem: str) -> None:
    with pytest.raises(TensorDataError, match=problem):
        bytes_elements(buffer, count)


def test_a_binary_request_becomes_the_json_request_it_stands_for() -> None:
    data = encode(["Great.", "Awful."], "BYTES")
    header = {"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES",
                          "parameters": {"binary_data_size": len(data)}}]}  # fmt: skip
    head = json.dumps(header).encode()
    body_head, rest = split_body(head + data, str(len(head)))
    body = attach_inputs(json.loads(body_head), rest)
    assert body["inputs"][0]["data"] == [["Great."], ["Awful."]]
    assert body["inputs"][0]["parameters"] == {}
    with pytest.raises(BinaryDataError, match="must be the JSON header's length"):
        split_body(head, "-3")


def test_outputs_go_binary_as_asked() -> None:
    names = ("probability", "label")
    assert binary_outputs({}, names) == set()
    assert binary_outputs({"parameters": {"binary_data_output": True}}, names) == set(names)
    mixed = {"parameters": {"binary_data_output": True},
             "outputs": [{"name": "label", "parameters": {"binary_data": False}}]}  # fmt: skip
    assert binary_outputs(mixed, names) == {"probability"}
    answer = {"model_name": "m", "outputs": [
        {"name": "probability", "shape": [2], "datatype": "FP64", "data": [0.25, 0.5]},
        {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["negative", "positive"]},
    ]}  # fmt: skip
    payload, headers = encode_outputs(answer, {"probability"})
    size = int(headers["Inference-Header-Content-Length"])
    head = json.loads(payload[:size])
    assert head["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert "data" not in head["outputs"][0] and head["outputs"][1]["data"][1] == "positive"
    assert struct.unpack("<2d", payload[size:]) == (0.25, 0.5)


def test_grpc_tensors_in_and_out() -> None:
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "text", "BYTES"
    tensor.shape.extend([2])
    tensor.contents.bytes_contents.extend([b"Good.", "Très bien.".encode()])
    assert request_texts(request) == ["Good.", "Très bien."]
    request.raw_input_contents.append(encode(["x", "y"], "BYTES"))
    with pytest.raises(TensorError, match="both contents and raw contents"):
        request_texts(request)
    response = pb.ModelInferResponse()
    fill_outputs(response, [0.75], ["positive"], ("predict_proba", "label"))
    assert [list(o.shape) for o in response.outputs] == [[1, 2], [1]]
    assert struct.unpack("<2d", response.raw_output_contents[0]) == (0.25, 0.75)
    assert bytes_elements(response.raw_output_contents[1], 1) == ["positive"]

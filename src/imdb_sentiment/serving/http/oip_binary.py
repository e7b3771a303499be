"""The Open Inference Protocol's binary tensor data extension, as Triton defines it for REST
(and tritonclient uses by default): pure functions, tested on their own.

A request whose `Inference-Header-Content-Length` header is N carries N bytes of JSON, then the
raw data of each input whose `parameters.binary_data_size` says so, in the order of `inputs`.
BYTES elements are each a 4-byte little-endian length and that many bytes. Outputs are returned
the same way when the request asks (`parameters.binary_data_output`, or an output's own
`parameters.binary_data`): their JSON carries `binary_data_size` instead of `data`, and the
response's own `Inference-Header-Content-Length` says where the JSON ends. Anything that does not
add up is a `BinaryDataError` (the route's 400), never a guess.
"""

from __future__ import annotations

import math
from typing import Any

from imdb_sentiment.serving.http import json_provider
from imdb_sentiment.serving.tensors import TensorDataError, bytes_elements, encode

HEADER = "Inference-Header-Content-Length"


class BinaryDataError(ValueError):
    """The binary part of a request does not match its JSON header."""


def split_body(raw: bytes, header: str) -> tuple[bytes, bytes]:
    """(the JSON header's bytes, the binary data after them)."""
    if not header.isdigit() or int(header) < 2:
        raise BinaryDataError(f"{HEADER} must be the JSON header's length in bytes")
    size = int(header)
    if size > len(raw):
        raise BinaryDataError(f"{HEADER} is {size} but the body has only {len(raw)} bytes")
    return raw[:size], raw[size:]


def attach_inputs(body: Any, data: bytes) -> dict[str, Any]:
    """The request with each binary input's elements as its `data`, decoded (BYTES: UTF-8)."""
    if not isinstance(body, dict):
        raise BinaryDataError("the JSON header is not an object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise BinaryDataError("the JSON header has no list of inputs")
    offset = 0
    for tensor in inputs:
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        if not isinstance(parameters, dict) or parameters.get("binary_data_size") is None:
            continue
        size = parameters["binary_data_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BinaryDataError("binary_data_size must be a whole number of bytes")
        if "data" in tensor:
            raise BinaryDataError(f"input {tensor.get('name')!r} has both data and binary data")
        if tensor.get("datatype") != "BYTES":
            raise BinaryDataError(f"input {tensor.get('name')!r}: binary data must be BYTES")
        if offset + size > len(data):
            raise BinaryDataError(
                f"input {tensor.get('name')!r} says {size} bytes of binary data, "
                f"{len(data) - offset} are left"
            )
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise BinaryDataError(f"input {tensor.get('name')!r} has no valid shape")
        try:
            elements = bytes_elements(data[offset : offset + size], math.prod(shape))
        except TensorDataError as exc:
            raise BinaryDataError(str(exc)) from None
        tensor["data"] = elements if len(shape) < 2 else [[e] for e in elements]
        del parameters["binary_data_size"]
        offset += size
    if offset != len(data):
        raise BinaryDataError(f"{len(data) - offset} bytes of binary data belong to no input")
    return body


def binary_outputs(body: dict[str, Any], names: tuple[str, ...]) -> set[str]:
    """Which of the answered outputs the request wants as binary data."""
    default = bool((body.get("parameters") or {}).get("binary_data_output", False))
    asked = {o.get("name"): (o.get("parameters") or {}) for o in body.get("outputs") or []}
    return {n for n in names if bool(asked.get(n, {}).get("binary_data", default))}


def encode_outputs(answer: dict[str, Any], binary: set[str]) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers: JSON alone, or JSON then each binary output's data."""
    blobs = []
    for tensor in answer["outputs"]:
        if tensor["name"] not in binary:
            continue
        blob = encode(tensor.pop("data"), tensor["datatype"])
        tensor.setdefault("parameters", {})["binary_data_size"] = len(blob)
        blobs.append(blob)
    header = json_provider.encode(answer)
    if not blobs:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(blobs), {
        "Content-Type": "application/octet-stream",
        HEADER: str(len(header)),
    }

"""The V2 gRPC inference protocol's tensors, for this model: pure functions on the protocol's
messages (tritonclient's generated `service_pb2`, the same wire messages as KServe's
`grpc_predict_v2`), tested on their own.

One input tensor of texts (`BYTES`, shape `[n]` or `[n, 1]`), its elements either in
`contents.bytes_contents` or, as tritonclient sends them, in the request's `raw_input_contents`
(each a 4-byte little-endian length and that many bytes). Outputs as in REST (`probability`
FP64, `label` BYTES, `predict_proba` FP64 `[n, 2]` when asked for by name), answered in
`raw_output_contents`, as Triton does. What does not add up is a `TensorError`: the server's
INVALID_ARGUMENT with its message.
"""

from __future__ import annotations

from typing import Any

from imdb_sentiment.serving.tensors import TensorDataError, bytes_elements, encode

INPUT = "text"
OUTPUTS = {"probability": "FP64", "label": "BYTES", "predict_proba": "FP64"}
DEFAULT_OUTPUTS = ("probability", "label")


class TensorError(ValueError):
    """The request's tensors are not what this model takes."""


def request_texts(request: Any) -> list[str]:
    """The texts of a ModelInferRequest, decoded; they are validated as texts afterwards."""
    if len(request.inputs) != 1:
        raise TensorError(f"send one input tensor of texts, not {len(request.inputs)}")
    tensor = request.inputs[0]
    if tensor.datatype != "BYTES":
        raise TensorError(f"the input tensor's datatype must be BYTES, not {tensor.datatype!r}")
    shape = list(tensor.shape)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1) or shape[0] < 0:
        raise TensorError(f"the input tensor's shape must be [n] or [n, 1], not {shape}")
    count = shape[0]
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1:
            raise TensorError("raw_input_contents must hold one entry per input tensor")
        if tensor.contents.bytes_contents:
            raise TensorError("the input has both contents and raw contents")
        try:
            return bytes_elements(request.raw_input_contents[0], count)
        except TensorDataError as exc:
            raise TensorError(str(exc)) from None
    elements = list(tensor.contents.bytes_contents)
    if len(elements) != count:
        raise TensorError(f"the shape says {count} texts, the contents hold {len(elements)}")
    try:
        return [e.decode("utf-8") for e in elements]
    except UnicodeDecodeError:
        raise TensorError("a text is not UTF-8") from None


def requested_outputs(request: Any) -> tuple[str, ...]:
    names = tuple(o.name for o in request.outputs) or DEFAULT_OUTPUTS
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown:
        raise TensorError(f"no output named {unknown[0]!r}; outputs: {', '.join(OUTPUTS)}")
    return names


def fill_outputs(response: Any, p_positive: list[float], labels: list[str],
                 names: tuple[str, ...]) -> None:  # fmt: skip
    """Append the output tensors and their raw contents to a ModelInferResponse. Rounded as
    REST rounds: every protocol gives the same numbers."""
    n = len(labels)
    p = [round(x, 6) for x in p_positive]
    values: dict[str, tuple[list[int], list[Any]]] = {
        "probability": ([n], p),
        "label": ([n], labels),
        "predict_proba": ([n, 2], [v for x in p_positive
                                   for v in (round(1.0 - x, 6), round(x, 6))]),
    }  # fmt: skip
    for name in names:
        shape, data = values[name]
        tensor = response.outputs.add()
        tensor.name, tensor.datatype = name, OUTPUTS[name]
        tensor.shape.extend(shape)
        response.raw_output_contents.append(encode(data, OUTPUTS[name]))

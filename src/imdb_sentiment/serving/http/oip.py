"""The Open Inference Protocol (OIP, "V2"), REST: what KServe, Triton, MLServer and Seldon
clients speak, beside this service's own API — same model, same scorer, same metrics and logs.

    GET  /v2/health/live, /v2/health/ready, /v2
    GET  /v2/models/{name}[/versions/{version}][/ready]
    POST /v2/models/{name}[/versions/{version}]/infer

One input tensor of texts (`BYTES`, shape `[n]` or `[n, 1]`); outputs `probability` (`FP64`,
P(positive)) and `label` (`BYTES`), and `predict_proba` (`FP64`, `[n, 2]`) when asked for by
name in `outputs`. Inputs and outputs may travel as binary data, Triton's binary tensor data
extension (`oip_binary`: what tritonclient sends and asks for by default). Errors are
`{"error": "<message>"}` with a 4xx (the protocol's shape); an unknown model or version is a
404. The request's schema is `Schemas.oip_infer` (it validates
requests and writes the OpenAPI document); what it cannot say is pure functions (`infer_texts`,
`wanted_outputs`), tested on their own.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Request, Response, g, jsonify, request
from flask.typing import ResponseReturnValue

from imdb_sentiment import __version__
from imdb_sentiment.serving.api_errors import ApiError
from imdb_sentiment.serving.http.context import predict, schemas, service
from imdb_sentiment.serving.http.oip_binary import (
    HEADER,
    BinaryDataError,
    attach_inputs,
    binary_outputs,
    encode_outputs,
    split_body,
)
from imdb_sentiment.serving.http.schemas import parse_json, read_body
from imdb_sentiment.serving.live_model import LoadedModel
from imdb_sentiment.serving.scoring import Prediction, ScoringService

bp = Blueprint("oip", __name__, url_prefix="/v2")
INPUT = "text"
DEFAULT_OUTPUTS = ("probability", "label")


def infer_texts(body: dict[str, Any]) -> list[Any]:
    """The texts of a well-formed OIP inference request (`Schemas.check_oip_infer`): its one
    BYTES tensor, flattened, after what JSON Schema cannot say — that the shape counts them."""
    tensor = body["inputs"][0]
    shape, data = tensor["shape"], tensor["data"]
    nested = bool(data) and isinstance(data[0], list)
    if len(shape) == 2 and shape[1] != 1:
        raise ApiError(400, "invalid_shape", "the input tensor's shape must be [n] or [n, 1]")
    if nested and len(shape) != 2:
        raise ApiError(400, "invalid_shape", "nested data needs the shape [n, 1]")
    if len(data) != shape[0]:
        said = f"the shape says {shape[0]} texts, the data holds {len(data)}"
        raise ApiError(400, "invalid_shape", said)
    return [row[0] for row in data] if nested else list(data)


def wanted_outputs(body: dict[str, Any]) -> tuple[str, ...]:
    """Names of the output tensors asked for (default: probability and label)."""
    asked = body.get("outputs")
    return DEFAULT_OUTPUTS if asked is None else tuple(o["name"] for o in asked)


def output_tensors(predictions: list[Prediction], names: tuple[str, ...]) -> list[dict[str, Any]]:
    n = len(predictions)
    # Rounded as /api/v1/predict rounds its scores: both protocols give the same numbers.
    p = [round(r.score.p_positive, 6) for r in predictions]
    tensors = {
        "probability": {"shape": [n], "datatype": "FP64", "data": p},
        "label": {"shape": [n], "datatype": "BYTES", "data": [r.label for r in predictions]},
        "predict_proba": {
            "shape": [n, 2],
            "datatype": "FP64",
            "data": [x for r in predictions for x in _pair(r.score.p_positive)],
        },
    }
    return [{"name": name, **tensors[name]} for name in names]


def _pair(positive: float) -> tuple[float, float]:
    return round(1.0 - positive, 6), round(positive, 6)


def _model(ctx: ScoringService, name: str, version: str | None) -> LoadedModel:
    """The served model if `name` (and `version`) name it, else a 404."""
    g.oip = True  # errors in the protocol's shape (app.py)
    if name != ctx.settings.model.model_name:
        raise ApiError(404, "unknown_model", f"no model named {name!r}")
    model = ctx.served_model()
    if version is not None and version != model.version:
        raise ApiError(404, "unknown_version", f"model {name!r} has no version {version!r}")
    return model


@bp.get("/health/live")
def live() -> ResponseReturnValue:
    return jsonify({"live": True})


@bp.get("/health/ready")
def ready() -> ResponseReturnValue:
    """KServe's readiness probe: the same question as /readyz (a model, a usable schema)."""
    is_ready = service().unready_reason() is None
    return jsonify({"ready": is_ready}), 200 if is_ready else 503


@bp.get("")
def server_metadata() -> ResponseReturnValue:
    return jsonify(
        {"name": "imdb-sentiment", "version": __version__, "extensions": ["binary_tensor_data"]}
    )


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> ResponseReturnValue:
    model = _model(service(), name, version)
    return jsonify(
        {
            "name": name,
            "versions": [model.version],
            "platform": "imdb-sentiment-compiled-scorer",
            "inputs": [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}],
            "outputs": [
                {"name": "probability", "datatype": "FP64", "shape": [-1]},
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
            ],
        }
    )


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> ResponseReturnValue:
    _model(service(), name, version)
    return jsonify({"name": name, "ready": True})


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> ResponseReturnValue:
    ctx = service()
    g.oip = True
    ctx.authorize(request.headers.get("Authorization"), "predict")
    # OIP clients (tritonclient among them) may send no content type: the body is JSON anyway.
    if request.mimetype not in ("", "application/json", "application/octet-stream"):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    body = request_body(request, ctx.settings.service.max_body_bytes)
    schemas().check_oip_infer(body)
    texts, names = infer_texts(body), wanted_outputs(body)
    model = _model(ctx, name, version)
    results = predict(model, texts)
    answer: dict[str, Any] = {
        "model_name": name,
        "model_version": model.version,
        "outputs": output_tensors(results, names),
    }
    if "id" in body:
        answer["id"] = body["id"]
    binary = binary_outputs(body, names)
    if not binary:
        return jsonify(answer)
    payload, headers = encode_outputs(answer, binary)
    return Response(payload, headers=headers)


def request_body(req: Request, limit: int) -> dict[str, Any]:
    """The JSON request, its binary inputs (Triton's binary tensor data extension, what
    tritonclient sends by default) decoded into their `data`."""
    raw = read_body(req, limit)
    header = req.headers.get(HEADER)
    if header is None:
        return parse_json(raw)
    try:
        head, data = split_body(raw, header)
        return attach_inputs(parse_json(head), data)  # the header as any JSON body is read
    except BinaryDataError as exc:
        raise ApiError(400, "binary_data", str(exc)) from None

"""The kserve SDK's clients against a running service — `rest` (`InferenceRESTClient`, OIP v2
over HTTP) or `grpc` (`InferenceGRPCClient`, the V2 gRPC protocol) — asking the same things:
prints what it got as one JSON object. Run with the kserve tool venv's Python:

    python tests/integration/kserve_clients.py rest http://127.0.0.1:PORT MODEL TEXT [TEXT ...]
    python tests/integration/kserve_clients.py grpc 127.0.0.1:PORT MODEL TEXT [TEXT ...]
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

REQUEST_IDS = {"rest": "kserve-1", "grpc": "kserve-grpc-1"}


async def ask(protocol: str, url: str, model: str, texts: list[str]) -> dict[str, Any]:
    # The REST client takes the server's URL on every call; the gRPC one is built for it.
    rest = protocol == "rest"
    client: Any = (InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30)) if rest
                   else InferenceGRPCClient(url, retries=0, timeout=30))  # fmt: skip
    at = (url,) if rest else ()
    try:
        tensor = InferInput("text", [len(texts)], "BYTES", data=texts)
        outputs = [RequestedOutput(name) for name in ("probability", "label", "predict_proba")]
        request = InferRequest(model, [tensor], request_id=REQUEST_IDS[protocol],
                               request_outputs=outputs)  # fmt: skip
        response = await (client.infer(url, request, model_name=model) if rest
                          else client.infer(request))  # fmt: skip
        # The REST parser gives each tensor's data as a flat list; gRPC's as numpy arrays.
        tensors = {o.name: (o, list(o.data) if rest else o.as_numpy().ravel().tolist())
                   for o in response.outputs}  # fmt: skip
        return {
            "live": await client.is_server_live(*at),
            "ready": await client.is_server_ready(*at),
            "model_ready": await client.is_model_ready(*at, model),
            "unknown_model_ready": await client.is_model_ready(*at, "no-such-model"),
            "id": response.id,
            "model_name": response.model_name,
            # (the SDK's REST parser drops model_version)
            "model_version": None if rest else response.model_version,
            "probability": [float(x) for x in tensors["probability"][1]],
            "label": [x.decode() if isinstance(x, bytes) else str(x) for x in tensors["label"][1]],
            "predict_proba": [float(x) for x in tensors["predict_proba"][1]],
            "predict_proba_shape": list(tensors["predict_proba"][0].shape),
        }
    finally:
        await client.close()


if __name__ == "__main__":
    protocol, url, model, *texts = sys.argv[1:]
    print(json.dumps(asyncio.run(ask(protocol, url, model, texts))))

"""The kserve SDK's REST client (`InferenceRESTClient`, OIP v2) against a running service:
prints what it got as one JSON object. Run with the kserve tool venv's Python:

    python tests/integration/kserve_client.py http://127.0.0.1:PORT MODEL TEXT [TEXT ...]
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput


async def ask(url: str, model: str, texts: list[str]) -> dict[str, Any]:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    try:
        tensor = InferInput("text", [len(texts)], "BYTES", data=texts)
        outputs = [RequestedOutput(name) for name in ("probability", "label", "predict_proba")]
        request = InferRequest(model, [tensor], request_id="kserve-1", request_outputs=outputs)
        response = await client.infer(url, request, model_name=model)
        tensors = {o.name: o for o in response.outputs}
        return {
            "live": await client.is_server_live(url),
            "ready": await client.is_server_ready(url),
            "model_ready": await client.is_model_ready(url, model),
            "unknown_model_ready": await client.is_model_ready(url, "no-such-model"),
            "id": response.id,
            "model_name": response.model_name,  # (the SDK's REST parser drops model_version)
            "probability": [float(x) for x in tensors["probability"].data],
            "label": [str(x) for x in tensors["label"].data],
            "predict_proba": [float(x) for x in tensors["predict_proba"].data],
            "predict_proba_shape": list(tensors["predict_proba"].shape),
        }
    finally:
        await client.close()


if __name__ == "__main__":
    url, model, *texts = sys.argv[1:]
    print(json.dumps(asyncio.run(ask(url, model, texts))))

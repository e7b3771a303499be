"""The kserve SDK's gRPC client (`InferenceGRPCClient`, the V2 gRPC protocol) against a running
service: prints what it got as one JSON object. Run with the kserve tool venv's Python:

    python tests/integration/kserve_grpc_client.py 127.0.0.1:PORT MODEL TEXT [TEXT ...]
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.infer_type import RequestedOutput


async def ask(url: str, model: str, texts: list[str]) -> dict[str, Any]:
    client = InferenceGRPCClient(url, retries=0, timeout=30)
    try:
        tensor = InferInput("text", [len(texts)], "BYTES", data=texts)
        outputs = [RequestedOutput(name) for name in ("probability", "label", "predict_proba")]
        request = InferRequest(model, [tensor], request_id="kserve-grpc-1",
                               request_outputs=outputs)  # fmt: skip
        response = await client.infer(request)
        tensors = {o.name: o for o in response.outputs}
        return {
            "live": await client.is_server_live(),
            "ready": await client.is_server_ready(),
            "model_ready": await client.is_model_ready(model),
            "unknown_model_ready": await client.is_model_ready("no-such-model"),
            "id": response.id,
            "model_name": response.model_name,
            "model_version": response.model_version,
            "probability": [float(x) for x in tensors["probability"].as_numpy()],
            "label": [
                x.decode() if isinstance(x, bytes) else str(x) for x in tensors["label"].as_numpy()
            ],
            "predict_proba": [float(x) for x in tensors["predict_proba"].as_numpy().ravel()],
            "predict_proba_shape": list(tensors["predict_proba"].shape),
        }
    finally:
        await client.close()


if __name__ == "__main__":
    url, model, *texts = sys.argv[1:]
    print(json.dumps(asyncio.run(ask(url, model, texts))))

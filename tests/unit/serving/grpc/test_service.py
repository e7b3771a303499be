"""The gRPC front is an adapter over the scoring service: it serves with no web framework
importable, and a prediction through it runs the files docs/architecture.md names."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from sklearn.pipeline import Pipeline
from tritonclient.grpc import service_pb2 as pb

from harness.project import ROOT
from harness.server import free_port
from imdb_sentiment.serving.grpc.service import InferenceServicer
from imdb_sentiment.serving.scoring import build_service
from imdb_sentiment.serving.service_settings import load_settings
from tests.helpers import files_run

# A real server on loopback and a real client, in a process where Flask, Werkzeug and gunicorn
# cannot be imported (None in sys.modules makes `import flask` raise ImportError).
BLOCKED = """
import sys
for name in ("flask", "werkzeug", "gunicorn"):
    sys.modules[name] = None
import grpc
from tritonclient.grpc import InferResult, service_pb2 as pb, service_pb2_grpc as rpc
from imdb_sentiment.serving.grpc.service import build
from imdb_sentiment.serving.scoring import build_service
from imdb_sentiment.serving.service_settings import load_settings
from tests.helpers import tiny_model

settings = load_settings(grpc_port=int(sys.argv[1]), host="127.0.0.1", database_url="")
server, service = build(settings, build_service(settings, model=tiny_model()))
server.start()
stub = rpc.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}"))
tensor = pb.ModelInferRequest().InferInputTensor(name="text", datatype="BYTES", shape=[2])
tensor.contents.bytes_contents.extend([b"A moving, well acted film.", b"Dull and awful."])
request = pb.ModelInferRequest(model_name=settings.model.model_name, inputs=[tensor])
answer = stub.ModelInfer(request)
labels = InferResult(answer).as_numpy("label")  # the raw contents, as Triton's clients read them
print("labels:" + ",".join(label.decode() for label in labels))
web = ("flask", "werkzeug", "gunicorn")
loaded = [m for m, module in sys.modules.items() if module is not None]
print("web:" + ",".join(sorted(m for m in loaded if m.split(".")[0] in web)))
server.stop(0)
service.close()
"""


def test_the_grpc_front_serves_with_no_web_framework_importable() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCKED, str(free_port())], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    said = dict(line.split(":", 1) for line in done.stdout.splitlines()
                if line.startswith(("labels:", "web:")))  # fmt: skip
    assert said == {"labels": "positive,negative", "web": ""}


class _Context:
    """What a gRPC server hands a servicer method, as far as ModelInfer uses it."""

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return []

    def send_initial_metadata(self, metadata: Any) -> None:
        self.sent = metadata

    def abort(self, code: Any, message: str) -> None:
        raise AssertionError(f"aborted: {code} {message}")


# What runs for one gRPC prediction with the prediction log on and a store (the default).
ROUTE = {
    "serving/grpc/service.py", "serving/grpc/messages.py", "serving/tensors.py",
    "serving/logs.py", "serving/scoring.py", "runtime/scorer.py", "core/text.py",
    "core/labels.py", "store/records.py", "store/database.py", "store/spool.py",
    "store/flusher.py", "serving/predictions.py", "core/background.py", "serving/metrics.py",
}  # fmt: skip


def traced_grpc_route(model: Pipeline) -> set[str]:
    settings = load_settings(prediction_log_rate=1.0)
    service = build_service(settings, model=model)
    servicer = InferenceServicer(service)
    tensor = pb.ModelInferRequest().InferInputTensor(name="text", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(b"A moving, well acted film.")
    request = pb.ModelInferRequest(model_name=settings.model.model_name, inputs=[tensor])
    servicer.ModelInfer(request, _Context())  # a warm-up: first calls import lazily
    try:
        response, ran = files_run(lambda: servicer.ModelInfer(request, _Context()))
    finally:
        service.close()
    assert [o.name for o in response.outputs] == ["probability", "label"]
    return ran


def test_a_grpc_prediction_runs_through_the_files_the_architecture_names(
    small_model: Pipeline,
) -> None:
    assert traced_grpc_route(small_model) == ROUTE
    doc = (ROOT / "docs" / "architecture.md").read_text()
    described = doc.split("**Over gRPC**", 1)[1].split("\n\n", 1)[0]
    assert not [f for f in ROUTE if f"`{f}`" not in described]
    assert f"**{len(ROUTE)} files**" in described

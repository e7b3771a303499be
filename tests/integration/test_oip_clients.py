"""The Open Inference Protocol as its clients speak it, against the real service (gunicorn,
2 workers, and the gRPC front beside them): tritonclient's HTTP client with its defaults (binary
tensor data in and out) and with JSON only, tritonclient's gRPC client, and the kserve SDK's
`InferenceGRPCClient` (in its tool venv) — each live, ready, model ready (an unknown model not),
metadata, and inference on real reviews equal to /api/v1/predict to 1e-12; 1,000 reviews in
concurrent batches over REST and gRPC; malformed binary bodies a 400, malformed gRPC requests
INVALID_ARGUMENT."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psutil
import pytest
import requests
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from harness.server import Pod, free_port
from tests.unit.serving.test_live_model import publish

pytestmark = pytest.mark.slow
MODEL = "imdb-sentiment"
TEXTS = ["A wonderful, moving film.", "Dull and far too long.", "It was fine, I suppose.",
         "Ein großartiger Film — « magnifique » 😀"]  # fmt: skip


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    """One service for the module (it starts in seconds, the tests take milliseconds)."""
    base = tmp_path_factory.mktemp("oip")
    registry = f"sqlite:///{base / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(base)
        patch.setenv("MLFLOW_TRACKING_URI", registry)
        publish(seed=1)
    pod = Pod(base / "pod", {"GRPC_PORT": str(free_port()), "MLFLOW_TRACKING_URI": registry,
                             "ALLOW_ANONYMOUS_WRITES": "true"})  # fmt: skip
    pod.start()
    try:
        yield pod
    finally:
        pod.stop()


def grpc_url(pod: Pod) -> str:
    return f"127.0.0.1:{pod.env['GRPC_PORT']}"


def expected(pod: Pod, texts: list[str]) -> tuple[np.ndarray, list[str]]:
    api = requests.post(f"{pod.url}/api/v1/predict", json={"texts": texts}, timeout=30).json()
    return (np.array([p["scores"]["positive"] for p in api["predictions"]]),
            [p["label"] for p in api["predictions"]])  # fmt: skip


def text_of(values: Any) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in values]


@pytest.mark.parametrize("binary", [True, False], ids=["defaults-binary", "json-only"])
def test_tritonclient_http(service: Pod, binary: bool) -> None:
    client = triton_http.InferenceServerClient(url=service.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and not client.is_model_ready("no-such-model")
    meta = client.get_model_metadata(MODEL)
    assert meta["versions"] == ["1"] and meta["inputs"][0]["datatype"] == "BYTES"
    tensor = triton_http.InferInput("text", [len(TEXTS)], "BYTES")
    if binary:  # exactly as a new user writes it: every argument left at its default
        tensor.set_data_from_numpy(np.array(TEXTS, dtype=object))
        result = client.infer(MODEL, [tensor])
        assert "data" not in result.get_output("probability")  # answered as binary data
        names: tuple[str, ...] = ("probability", "label")
    else:
        tensor.set_data_from_numpy(np.array(TEXTS, dtype=object), binary_data=False)
        names = ("probability", "label", "predict_proba")
        wanted = [triton_http.InferRequestedOutput(n, binary_data=False) for n in names]
        result = client.infer(MODEL, [tensor], outputs=wanted)
    p, labels = expected(service, TEXTS)
    assert np.abs(result.as_numpy("probability") - p).max() <= 1e-12
    assert text_of(result.as_numpy("label")) == labels
    if "predict_proba" in names:
        assert np.abs(result.as_numpy("predict_proba")[:, 1] - p).max() <= 1e-12
    # Binary in, mixed out: one output asked for as JSON, one as binary.
    mixed = [triton_http.InferRequestedOutput("probability", binary_data=True),
             triton_http.InferRequestedOutput("label", binary_data=False)]  # fmt: skip
    tensor.set_data_from_numpy(np.array(TEXTS, dtype=object))
    result = client.infer(MODEL, [tensor], outputs=mixed)
    assert "data" in result.get_output("label") and "data" not in result.get_output("probability")
    assert np.abs(result.as_numpy("probability") - p).max() <= 1e-12


def test_tritonclient_grpc(service: Pod) -> None:
    client = triton_grpc.InferenceServerClient(url=grpc_url(service))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    assert not client.is_model_ready("no-such-model") and not client.is_model_ready(MODEL, "9")
    assert client.get_server_metadata().name == "imdb-sentiment"
    meta = client.get_model_metadata(MODEL)
    assert list(meta.versions) == ["1"] and meta.inputs[0].datatype == "BYTES"
    tensor = triton_grpc.InferInput("text", [len(TEXTS)], "BYTES")
    tensor.set_data_from_numpy(np.array(TEXTS, dtype=object))
    names = ("probability", "label", "predict_proba")
    result = client.infer(MODEL, [tensor], outputs=[triton_grpc.InferRequestedOutput(n)
                                                    for n in names],
                          request_id="triton-grpc-1", headers={"x-request-id": "mine"})  # fmt: skip
    p, labels = expected(service, TEXTS)
    assert np.abs(result.as_numpy("probability") - p).max() <= 1e-12
    assert text_of(result.as_numpy("label")) == labels
    assert np.abs(result.as_numpy("predict_proba")[:, 1] - p).max() <= 1e-12
    response = result.get_response()
    assert (response.id, response.model_version) == ("triton-grpc-1", "1")
    defaults = client.infer(MODEL, [tensor])  # no outputs asked for: probability and label
    assert [o.name for o in defaults.get_response().outputs] == ["probability", "label"]


def test_the_kserve_sdk_grpc_client(service: Pod) -> None:
    from tests.integration.test_kserve import kserve_python

    script = Path(__file__).with_name("kserve_clients.py")
    said = subprocess.run([kserve_python(), str(script), "grpc", grpc_url(service), MODEL,
                           *TEXTS],
                          capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
    assert said.returncode == 0, said.stderr[-2000:]
    got = json.loads(said.stdout)
    p, labels = expected(service, TEXTS)
    assert got["live"] is got["ready"] is got["model_ready"] is True
    assert got["unknown_model_ready"] is False
    assert (got["id"], got["model_name"], got["model_version"]) == ("kserve-grpc-1", MODEL, "1")
    assert np.abs(np.array(got["probability"]) - p).max() <= 1e-12
    assert got["label"] == labels and got["predict_proba_shape"] == [len(TEXTS), 2]
    proba = np.array(got["predict_proba"]).reshape(len(TEXTS), 2)
    assert np.abs(proba[:, 1] - p).max() <= 1e-12


def reviews(n: int) -> list[str]:
    """`n` real IMDB reviews (the archive CI points IMDB_SOURCE at), else synthetic ones."""
    import tarfile

    from tests.conftest import FULL_DATA_SOURCE
    from tests.helpers import review_files

    if FULL_DATA_SOURCE and "://" not in FULL_DATA_SOURCE:
        texts = []
        with tarfile.open(FULL_DATA_SOURCE, "r:gz") as archive:
            for member in archive:
                if (
                    "/test/" in member.name
                    and member.name.endswith(".txt")
                    and "urls" not in member.name
                ):
                    texts.append(archive.extractfile(member).read().decode())  # type: ignore[union-attr]
                    if len(texts) == n:
                        return texts
    synthetic = [t.decode() for name, t in review_files(per_label=n, seed=5).items()
                 if name.endswith(".txt") and "/test/" in name and "urls" not in name]  # fmt: skip
    return synthetic[:n]


def test_a_thousand_reviews_in_concurrent_batches(service: Pod) -> None:
    texts = reviews(1000)
    batches = [texts[i : i + 100] for i in range(0, 1000, 100)]
    http = triton_http.InferenceServerClient(url=service.url.removeprefix("http://"),
                                             concurrency=4)  # fmt: skip
    pending = []
    for batch in batches:
        tensor = triton_http.InferInput("text", [len(batch)], "BYTES")
        tensor.set_data_from_numpy(np.array(batch, dtype=object))
        pending.append(http.async_infer(MODEL, [tensor]))
    over_rest = np.concatenate([r.get_result().as_numpy("probability") for r in pending])
    client = triton_grpc.InferenceServerClient(url=grpc_url(service))
    results: dict[int, Any] = {}

    def done(index: int) -> Any:
        return lambda result, error: results.__setitem__(index, error or result)

    for index, batch in enumerate(batches):
        tensor = triton_grpc.InferInput("text", [len(batch)], "BYTES")
        tensor.set_data_from_numpy(np.array(batch, dtype=object))
        client.async_infer(MODEL, [tensor], callback=done(index))
    deadline = time.monotonic() + 60
    while len(results) < len(batches):
        assert time.monotonic() < deadline, "gRPC batches not answered"
        time.sleep(0.05)
    over_grpc = np.concatenate([results[i].as_numpy("probability") for i in range(len(batches))])
    quarters = [texts[i : i + 250] for i in range(0, 1000, 250)]
    with ThreadPoolExecutor(4) as pool:
        reference = np.concatenate(list(pool.map(lambda b: expected(service, b)[0], quarters)))
    assert np.abs(over_rest - reference).max() <= 1e-12
    assert np.abs(over_grpc - reference).max() <= 1e-12


# --- malformed input -------------------------------------------------------------------
def binary_request(header: dict[str, Any], data: bytes, length: int | None = None
                   ) -> tuple[bytes, dict[str, str]]:  # fmt: skip
    head = json.dumps(header).encode()
    size = len(head) if length is None else length
    return head + data, {"Inference-Header-Content-Length": str(size),
                         "Content-Type": "application/octet-stream"}  # fmt: skip


def elements(*texts: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(t)) + t for t in texts)


def tensor(n: int, size: int, datatype: str = "BYTES") -> dict[str, Any]:
    return {"inputs": [{"name": "text", "shape": [n], "datatype": datatype,
                        "parameters": {"binary_data_size": size}}]}  # fmt: skip


GOOD = elements(b"Great film.", b"Awful film.")
MALFORMED = {
    "header longer than the body": binary_request(tensor(2, len(GOOD)), GOOD, length=10_000),
    "header not a number": (b"{}", {"Inference-Header-Content-Length": "ten"}),
    "header not JSON": binary_request(tensor(2, len(GOOD)), GOOD, length=3),
    "size beyond the data": binary_request(tensor(2, len(GOOD) + 5), GOOD),
    "bytes left over": binary_request(tensor(2, len(GOOD)), GOOD + b"xx"),
    "an element's length past the end": binary_request(
        tensor(2, 8 + 3), struct.pack("<I", 1) + b"a" + struct.pack("<I", 99) + b"bcd"),
    "fewer elements than the shape": binary_request(tensor(3, len(GOOD)), GOOD),
    "more elements than the shape": binary_request(tensor(1, len(GOOD)), GOOD),
    "not UTF-8": binary_request(tensor(1, 6), elements(b"\xff\xfe")),
    "binary data for a non-BYTES tensor": binary_request(tensor(2, len(GOOD), "FP32"), GOOD),
    "a negative size": binary_request(tensor(2, -1), GOOD),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_binary_bodies_are_400s(service: Pod, case: str) -> None:
    body, headers = MALFORMED[case]
    answer = requests.post(f"{service.url}/v2/models/{MODEL}/infer", data=body, headers=headers,
                           timeout=10)  # fmt: skip
    assert answer.status_code == 400, (case, answer.status_code, answer.text)
    assert answer.json()["error"]  # the protocol's shape, a message naming the problem


def test_a_binary_body_over_the_size_limit_is_413(service: Pod) -> None:
    big = elements(b"x" * 5_000_000)
    body, headers = binary_request(tensor(1, len(big)), big)
    answer = requests.post(f"{service.url}/v2/models/{MODEL}/infer", data=body, headers=headers,
                           timeout=10)  # fmt: skip
    assert answer.status_code == 413


def raw_request(shape: list[int], raw: bytes | None = None, datatype: str = "BYTES",
                contents: list[bytes] | None = None) -> Any:  # fmt: skip
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "text", datatype
    tensor.shape.extend(shape)
    if contents is not None:
        tensor.contents.bytes_contents.extend(contents)
    if raw is not None:
        request.raw_input_contents.append(raw)
    return request


GRPC_MALFORMED = {
    "wrong datatype": raw_request([2], GOOD, datatype="FP32"),
    "shape and data disagree": raw_request([3], GOOD),
    "contents count and shape disagree": raw_request([3], contents=[b"a", b"b"]),
    "empty batch": raw_request([0], b""),
    "an empty text": raw_request([1], elements(b"   ")),
    "a bad shape": raw_request([2, 2], GOOD),
    "over the size limit": raw_request([1], elements(b"x" * 4_200_000)),
}


@pytest.mark.parametrize("case", list(GRPC_MALFORMED))
def test_malformed_grpc_requests_are_invalid_argument(service: Pod, case: str) -> None:
    from tritonclient.grpc import service_pb2_grpc as rpc

    with grpc.insecure_channel(grpc_url(service), options=[
            ("grpc.max_send_message_length", 16 * 1024 * 1024)]) as channel:  # fmt: skip
        stub = rpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.ModelInfer(GRPC_MALFORMED[case], timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (case, raised.value)
    assert raised.value.details()


def test_grpc_unknown_model_is_not_found_and_records_are_kept(service: Pod) -> None:
    from tritonclient.grpc import service_pb2_grpc as rpc

    with grpc.insecure_channel(grpc_url(service)) as channel:
        stub = rpc.GRPCInferenceServiceStub(channel)
        request = raw_request([1], elements(b"A moving film."))
        request.model_name = "no-such-model"
        with pytest.raises(grpc.RpcError) as raised:
            stub.ModelInfer(request, timeout=10)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        request.model_name = MODEL
        _, call = stub.ModelInfer.with_call(request, timeout=10,
                                            metadata=(("x-request-id", "caller-7"),))  # fmt: skip
        server_id = dict(call.initial_metadata())["x-request-id"]
    assert len(server_id) == 32
    answer = requests.post(f"{service.url}/api/v1/feedback", timeout=10,
                           json={"request_id": server_id, "label": "positive"})  # fmt: skip
    assert answer.status_code == 201, answer.text  # the gRPC prediction is in the store
    metrics = requests.get(f"{service.url}/metrics", timeout=10).text
    assert 'endpoint="/inference.GRPCInferenceService/ModelInfer"' in metrics


def grpc_fronts(pod: Pod) -> list[int]:
    """The pod's gRPC front processes (the gunicorn master's children running serving.grpc)."""
    assert pod.proc is not None
    found = []
    for process in psutil.Process(pod.proc.pid).children():
        with contextlib.suppress(psutil.Error):
            if "imdb_sentiment.serving.grpc" in " ".join(process.cmdline()):
                found.append(process.pid)
    return found


def test_grpc_needs_the_tokens_follows_the_model_and_stops_with_the_server(
    tmp_path: Path,
) -> None:
    """Tokens as on REST (API_TOKENS_FOR=all), the new production version served over gRPC
    once the sync moves the cache (as the workers do), a killed front process restarted by the
    supervisor, and none left once the server is stopped."""
    from tritonclient.grpc import service_pb2_grpc as rpc

    from tests.unit.serving.test_auth import tokens_file

    registry = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        patch.setenv("MLFLOW_TRACKING_URI", registry)
        publish(seed=1)
    env = {"GRPC_PORT": str(free_port()), "MLFLOW_TRACKING_URI": registry,
           "MODEL_RELOAD_INTERVAL": "0.5", "API_TOKENS_FOR": "all",
           "API_TOKENS_FILE": str(tokens_file(tmp_path, "s3cret"))}  # fmt: skip
    pod = Pod(tmp_path / "pod", env)
    token = (("authorization", "Bearer s3cret"),)
    pod.start()
    try:
        with grpc.insecure_channel(grpc_url(pod)) as channel:
            stub = rpc.GRPCInferenceServiceStub(channel)
            request = raw_request([1], elements(b"A moving film."))
            with pytest.raises(grpc.RpcError) as raised:
                stub.ModelInfer(request, timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert stub.ModelInfer(request, timeout=10, metadata=token).model_version == "1"
            with pytest.MonkeyPatch.context() as patch:
                patch.chdir(tmp_path)
                patch.setenv("MLFLOW_TRACKING_URI", registry)
                new = publish(seed=2)
            deadline = time.monotonic() + 30
            while stub.ModelInfer(request, timeout=10, metadata=token).model_version != new:
                assert time.monotonic() < deadline, "the gRPC front kept the old model"
                time.sleep(0.2)
        fronts = grpc_fronts(pod)
        assert len(fronts) == 2  # GRPC_WORKERS' default: two processes on one port
        os.kill(fronts[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(set(grpc_fronts(pod)) - {fronts[0]}) < 2:
            assert time.monotonic() < deadline, "the supervisor did not restart the gRPC front"
            time.sleep(0.2)
        restarted = grpc_fronts(pod)
        with grpc.insecure_channel(grpc_url(pod)) as channel:
            stub = rpc.GRPCInferenceServiceStub(channel)
            grpc.channel_ready_future(channel).result(timeout=30)
            assert stub.ModelInfer(request, timeout=10, metadata=token).model_version == new
    finally:
        assert pod.stop() == 0
    for pid in restarted:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"

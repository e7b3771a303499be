"""The Open Inference Protocol's three ways in, paired with /api/v1/predict in the same run.

Usage (after `make pipeline promote`):

    python benchmarks/oip.py [--seconds 10] [--clients 8] [--rounds 2]

Starts the service (gunicorn, 2 workers, and the gRPC front: GRPC_PORT) with its defaults, then
loads it, one way after another within each round, with a single review (the median-length test
review) and with batches of 100 test reviews: /api/v1/predict (the reference), OIP REST with JSON
tensors, OIP REST with binary tensors (Triton's extension, tritonclient's default), and OIP gRPC
(raw contents, as tritonclient sends them). Every way is driven by the same closed-loop Python
client (`--clients` concurrent requests, over 4 processes), so the figures compare the ways, not
the load generators; the client shares the 2 cores with the service, as hey does in serve.py.
Prints requests/s, reviews/s, p50 and p99 per way and the ratio to /api/v1/predict.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import machine  # noqa: E402
from benchmarks.serve import median_review, start, stop  # noqa: E402
from harness.server import free_port  # noqa: E402

MODEL = "imdb-sentiment"


def bodies(texts: list[str]) -> dict[str, tuple[bytes, dict[str, str]]]:
    """What each HTTP way posts for `texts`: (body, headers)."""
    tensor = {"name": "text", "shape": [len(texts)], "datatype": "BYTES"}
    raw = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    head = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
                       "parameters": {"binary_data_output": True}}).encode()  # fmt: skip
    json_type = {"Content-Type": "application/json"}
    return {
        "api": (json.dumps({"texts": texts}).encode(), json_type),
        "rest-json": (json.dumps({"inputs": [{**tensor, "data": texts}]}).encode(), json_type),
        "rest-binary": (head + raw, {"Content-Type": "application/octet-stream",
                                     "Inference-Header-Content-Length": str(len(head))}),
    }  # fmt: skip


def grpc_request(texts: list[str]) -> Any:
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "text", "BYTES"
    tensor.shape.extend([len(texts)])
    request.raw_input_contents.append(
        b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    )
    return request


def client(args: tuple[str, str, str, list[str], float, int]) -> list[float]:
    """One process of the load: `threads` closed loops for `seconds`; their latencies."""
    import threading

    way, url, grpc_target, texts, seconds, threads = args
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        mine = []
        if way == "grpc":
            import grpc
            from tritonclient.grpc import service_pb2_grpc as rpc

            stub = rpc.GRPCInferenceServiceStub(grpc.insecure_channel(grpc_target))
            request = grpc_request(texts)
            while time.monotonic() < deadline:
                started = time.perf_counter()
                stub.ModelInfer(request, timeout=30)
                mine.append(time.perf_counter() - started)
        else:
            import requests

            body, headers = bodies(texts)[way]
            path = "/api/v1/predict" if way == "api" else f"/v2/models/{MODEL}/infer"
            session = requests.Session()
            while time.monotonic() < deadline:
                started = time.perf_counter()
                answer = session.post(url + path, data=body, headers=headers, timeout=30)
                assert answer.status_code == 200, answer.text[:200]
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return latencies


def load(way: str, url: str, grpc_target: str, texts: list[str], args: argparse.Namespace
         ) -> dict[str, float]:  # fmt: skip
    processes = min(4, args.clients)
    per = [args.clients // processes + (i < args.clients % processes) for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(client, [(way, url, grpc_target, texts, args.seconds, n) for n in per])
    latencies = sorted(x for part in parts for x in part)
    n = len(latencies)
    return {
        "rps": n / args.seconds,
        "reviews": n * len(texts) / args.seconds,
        "p50_ms": latencies[n // 2] * 1000,
        "p99_ms": latencies[int(n * 0.99)] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    test = pd.read_parquet(ROOT / "data/raw/test.parquet").text
    median = median_review(test)
    batch = test.sample(100, random_state=0).tolist()
    port = free_port()
    env = {"GRPC_PORT": str(port), "DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/p.db"}
    proc, url = start("service", env)
    grpc_target = f"127.0.0.1:{port}"
    ways = ("api", "rest-json", "rest-binary", "grpc")
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for way in ways:  # warm every way once
            load(way, url, grpc_target, [median], argparse.Namespace(seconds=1, clients=2))
        for _ in range(args.rounds):
            for shape, texts in (("single", [median]), ("batch of 100", batch)):
                for way in ways:
                    results.setdefault((shape, way), []).append(
                        load(way, url, grpc_target, texts, args)
                    )
    finally:
        stop(proc)
    print(f"machine:  {machine()}")
    print(f"scenario: gunicorn 2 workers + the gRPC front, {args.clients} closed-loop clients "
          f"(Python, 4 processes), {args.seconds:g} s per way, {args.rounds} rounds, medians; "
          f"the median test review ({len(median)} chars), batches of 100 test reviews")  # fmt: skip
    for shape in ("single", "batch of 100"):
        reference = statistics.median(r["rps"] for r in results[(shape, "api")])
        for way in ways:
            runs = results[(shape, way)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"{shape:12s} {way:12s} {med['rps']:8.0f} req/s {med['reviews']:9.0f} "
                  f"reviews/s  p50 {med['p50_ms']:6.2f} ms  p99 {med['p99_ms']:6.2f} ms  "
                  f"{med['rps'] / reference:5.2f}x /api/v1/predict")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

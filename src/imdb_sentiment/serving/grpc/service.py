"""The V2 gRPC inference protocol (KServe/Triton's `inference.GRPCInferenceService`) on its own
port (`GRPC_PORT`): ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata and
ModelInfer, served by `GRPC_WORKERS` processes beside gunicorn's workers, sharing the port
(SO_REUSEPORT); `serving.server.Server` starts and supervises them (`Supervisor`), and stops
them by process id.

It is an adapter over the scoring service (`serving.scoring`), as the HTTP app is, and knows
no web framework: `build_service` wires the settings, the live model (following the model cache
like a worker, hot-swapping when the sync moves it), the metrics (Prometheus' multiprocess files:
/metrics counts gRPC requests too), the bearer tokens, the prediction log and the prediction
store; a request gets a server-made id
(returned in the `x-request-id` response metadata), its records are kept under it, and the
caller's `x-request-id` metadata is its correlation id. The protocol's messages and service
stubs are tritonclient's generated ones (the same wire messages KServe's clients speak): no
hand-written wire format. Bad input is a gRPC status with a message (INVALID_ARGUMENT,
NOT_FOUND, UNAUTHENTICATED, UNAVAILABLE), never an internal error.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc
from pydantic import ValidationError
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as rpc

from imdb_sentiment import __version__
from imdb_sentiment.serving.api_errors import ApiError
from imdb_sentiment.serving.grpc.messages import (
    INPUT,
    OUTPUTS,
    TensorError,
    fill_outputs,
    request_texts,
    requested_outputs,
)
from imdb_sentiment.serving.logs import (
    CLIENT_REQUEST_ID,
    REQUEST_ID,
    client_request_id,
    new_request_id,
)
from imdb_sentiment.serving.scoring import ScoringService, build_service
from imdb_sentiment.serving.service_settings import Settings, load_settings

log = logging.getLogger(__name__)
SERVICE = "/inference.GRPCInferenceService/"
PLATFORM = "imdb-sentiment-compiled-scorer"
# gRPC statuses as the HTTP ones the metrics and alerts know (a 5xx is a server fault).
HTTP_STATUS = {grpc.StatusCode.OK: 200, grpc.StatusCode.INVALID_ARGUMENT: 400,
               grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.NOT_FOUND: 404,
               grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.INTERNAL: 500}  # fmt: skip
T = TypeVar("T")


class AbortError(Exception):
    """End the call with this gRPC status and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def from_api_error(error: ApiError) -> AbortError:
    codes = {401: grpc.StatusCode.UNAUTHENTICATED, 404: grpc.StatusCode.NOT_FOUND,
             503: grpc.StatusCode.UNAVAILABLE}  # fmt: skip
    code = codes.get(error.status, grpc.StatusCode.INVALID_ARGUMENT)
    return AbortError(code, error.detail)


class InferenceServicer(rpc.GRPCInferenceServiceServicer):
    def __init__(self, service: ScoringService) -> None:
        self.service = service

    # --- every call: metrics, ids, statuses ----------------------------------------------
    def _call(self, method: str, context: Any, handle: Callable[[], T], batch: bool = False) -> T:
        started = time.perf_counter()
        status = grpc.StatusCode.OK
        try:
            return handle()
        except AbortError as abort:
            status = abort.code
            self.service.metrics.errors.labels(endpoint=SERVICE + method,
                                           reason=abort.code.name.lower()).inc()  # fmt: skip
            context.abort(abort.code, abort.message)
            raise  # unreachable: abort raises
        except Exception:
            status = grpc.StatusCode.INTERNAL
            log.exception("unhandled error in %s", method)  # a bug; never its text to callers
            context.abort(grpc.StatusCode.INTERNAL, "unexpected server error")
            raise
        finally:
            elapsed = time.perf_counter() - started
            cost = elapsed * self.service.settings.service.instance_cost_per_hour / 3600
            shape = "batch" if batch else "single"
            self.service.metrics.observe_request(
                "POST", SERVICE + method, str(HTTP_STATUS[status]), shape, elapsed, cost
            )

    def _model(self, name: str, version: str) -> Any:
        if name != self.service.settings.model.model_name:
            raise AbortError(grpc.StatusCode.NOT_FOUND, f"no model named {name!r}")
        model = self.service.model.current
        if model is None:
            raise AbortError(grpc.StatusCode.UNAVAILABLE, self.service.model.public_reason)
        if version and version != model.version:
            raise AbortError(grpc.StatusCode.NOT_FOUND,
                        f"model {name!r} has no version {version!r}")  # fmt: skip
        return model

    # --- health and metadata ----------------------------------------------------------------
    def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 (the protocol's)
        return self._call("ServerLive", context, lambda: pb.ServerLiveResponse(live=True))

    def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        ready = self.service.unready_reason() is None  # as /readyz and /v2/health/ready
        return self._call("ServerReady", context, lambda: pb.ServerReadyResponse(ready=ready))

    def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        def ready() -> Any:
            try:
                self._model(request.name, request.version)
            except AbortError:
                return pb.ModelReadyResponse(ready=False)
            return pb.ModelReadyResponse(ready=True)

        return self._call("ModelReady", context, ready)

    def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._call("ServerMetadata", context, lambda: pb.ServerMetadataResponse(
            name="imdb-sentiment", version=__version__, extensions=[]))  # fmt: skip

    def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        def metadata() -> Any:
            model = self._model(request.name, request.version)
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=request.name, versions=[model.version], platform=PLATFORM,
                inputs=[tensor(name=INPUT, datatype="BYTES", shape=[-1])],
                outputs=[tensor(name=n, datatype=t, shape=[-1, 2] if n == "predict_proba"
                                else [-1]) for n, t in OUTPUTS.items()],
            )  # fmt: skip

        return self._call("ModelMetadata", context, metadata)

    # --- inference ------------------------------------------------------------------------
    def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        metadata = dict(context.invocation_metadata())
        server_id = new_request_id()
        client_id = client_request_id(metadata.get("x-request-id")) or client_request_id(
            request.id or None
        )
        context.send_initial_metadata((("x-request-id", server_id),))
        shape = list(request.inputs[0].shape) if request.inputs else []
        batch = bool(shape) and shape[0] > 1
        with _ids(server_id, client_id):
            return self._call(
                "ModelInfer", context,
                lambda: self._infer(request, metadata, server_id, client_id), batch,
            )  # fmt: skip

    def _infer(self, request: Any, metadata: dict[str, str], server_id: str,
               client_id: str | None) -> Any:  # fmt: skip
        try:
            self.service.authorize(metadata.get("authorization"), "predict")
        except ApiError as error:
            raise from_api_error(error) from None
        if request.ByteSize() > self.service.settings.service.max_body_bytes:
            limit = self.service.settings.service.max_body_bytes
            raise AbortError(grpc.StatusCode.INVALID_ARGUMENT, f"request larger than {limit} bytes")
        model = self._model(request.model_name, request.model_version)
        try:
            names = requested_outputs(request)
            texts = self.service.texts.validate_python(request_texts(request))
        except TensorError as exc:
            raise AbortError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        except ValidationError as exc:
            raise AbortError(grpc.StatusCode.INVALID_ARGUMENT, _first_problem(exc)) from None
        results = self.service.predict(model, texts, server_id, client_id)
        response = pb.ModelInferResponse(model_name=request.model_name,
                                         model_version=model.version, id=request.id)  # fmt: skip
        fill_outputs(response, [r.score.p_positive for r in results],
                     [r.label for r in results], names)  # fmt: skip
        return response


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(x) for x in error["loc"])
    return f"text {where}: {error['msg']}" if where else f"texts: {error['msg']}"


@contextmanager
def _ids(server_id: str, client_id: str | None) -> Iterator[None]:
    """The request's ids on every log line of it, as the HTTP app does."""
    token, client = REQUEST_ID.set(server_id), CLIENT_REQUEST_ID.set(client_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)
        CLIENT_REQUEST_ID.reset(client)


def build(
    settings: Settings, service: ScoringService | None = None
) -> tuple[grpc.Server, ScoringService]:
    """The server (not started) on settings.service.grpc_port, and the scoring service behind it
    (`service`: one built already, as tests do)."""
    scoring_service = service or build_service(settings)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.service.grpc_threads,
                                   thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", settings.service.max_body_bytes + 65536),
                 ("grpc.max_send_message_length", settings.service.max_body_bytes + 65536),
                 ("grpc.so_reuseport", 1)],  # GRPC_WORKERS processes on one port
    )  # fmt: skip
    rpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(scoring_service), server)
    server.add_insecure_port(f"{settings.service.host}:{settings.service.grpc_port}")
    return server, scoring_service


def serve() -> None:
    """A server's gRPC front (`serving.server.Server` starts GRPC_WORKERS of these): run
    until SIGTERM (the gunicorn master's stop), in-flight calls get their grace."""
    # As a worker: the model from the cache the server's sync fills, the store left to the
    # master to migrate.
    settings = load_settings(model_sync="sidecar")
    server, scoring_service = build(settings, build_service(settings, migrate=False))
    server.start()
    log.info("gRPC inference protocol on port %d", settings.service.grpc_port)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    stopping.wait()
    server.stop(grace=settings.service.timeout).wait()
    scoring_service.close()

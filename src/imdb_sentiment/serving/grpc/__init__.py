"""The service's V2 gRPC front (KServe/Triton's inference protocol), beside the HTTP one.

- `tensors` the protocol's tensors for this model, as pure functions on its messages.
- `server`  the servicer and the process gunicorn's master starts and supervises.

Imports: grpcio, tritonclient's generated stubs, `serving.grpc.tensors`, `serving.http`,
`serving.logs`, `serving.scoring`, `serving.settings`, `serving.tensors`.
"""

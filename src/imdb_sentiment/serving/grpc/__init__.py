"""The service's V2 gRPC front (KServe/Triton's inference protocol), beside the HTTP one.

- `messages` the protocol's tensors for this model, as pure functions on its messages.
- `service`  the servicer and the process gunicorn's master starts and supervises.
"""

"""Tensor data as the Open Inference Protocol's binary forms carry it (REST's binary tensor
data extension, gRPC's raw contents): FP64 as little-endian doubles, BYTES as elements each
prefixed by its 4-byte little-endian length. Pure functions; both fronts use them.
"""

from __future__ import annotations

import struct
from typing import Any

_LENGTH = struct.Struct("<I")


class TensorDataError(ValueError):
    """Binary tensor data that does not hold what its shape says."""


def bytes_elements(buffer: bytes, count: int) -> list[str]:
    """`count` length-prefixed BYTES elements, exactly filling `buffer`, as UTF-8 text."""
    found, offset = [], 0
    for index in range(count):
        if offset + 4 > len(buffer):
            raise TensorDataError(f"binary data ends before element {index} of {count}")
        (length,) = _LENGTH.unpack_from(buffer, offset)
        offset += 4
        if offset + length > len(buffer):
            raise TensorDataError(f"element {index} says {length} bytes, the data ends first")
        try:
            found.append(buffer[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise TensorDataError(f"element {index} is not UTF-8 text") from None
        offset += length
    if offset != len(buffer):
        raise TensorDataError(f"binary data holds more than the shape's {count} elements")
    return found


def encode(data: list[Any], datatype: str) -> bytes:
    """A flat list of FP64 numbers or BYTES texts in its binary form."""
    if datatype == "FP64":
        return struct.pack(f"<{len(data)}d", *data)
    if datatype == "BYTES":
        parts = [s.encode("utf-8") for s in data]
        return b"".join(_LENGTH.pack(len(p)) + p for p in parts)
    raise ValueError(f"no binary form for {datatype}")  # a bug: outputs are FP64 or BYTES

"""Delta + zigzag + LEB128 varint of int64 values: near-monotone integers (timestamps, row ids)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _codec
from ..spec import DType, Encoding
from .base import DecodeError, Encoded, StreamEncoding, StreamHead, empty, register_encoding

__all__ = ["DeltaVarint"]


class DeltaVarint(StreamEncoding):
    """Each value minus the previous one, zigzagged, as a varint of 1 to 10 bytes."""

    id = Encoding.DELTA_VARINT
    name = "delta_varint"

    def encode(self, values: np.ndarray, **params: Any) -> Encoded:
        buf = np.empty(10 * values.shape[0], dtype=np.uint8)
        size = _codec.delta_varint_encode(values, buf)
        return Encoded(self.id, buf[:size], 0, 0)

    def encoded_size(self, head: StreamHead, np_dtype: np.dtype) -> int:
        n, esize = head.count, head.encoded_size
        if head.dtype != DType.INT64:
            raise DecodeError(f"delta varint encoding on a {np_dtype} stream")
        if not n <= esize <= 10 * n:
            raise DecodeError(f"delta varint stream of {n} values holds {esize} bytes, expected {n} to {10 * n}")
        return esize

    def decode(self, head: StreamHead, raw: bytes | memoryview, np_dtype: np.dtype) -> np.ndarray:
        out = empty(head.count, np.int64)
        _codec.delta_varint_decode(np.frombuffer(raw, np.uint8), out)
        return out


register_encoding(DeltaVarint())

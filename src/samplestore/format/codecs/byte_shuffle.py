"""Byte shuffle: byte ``j`` of every value, then byte ``j + 1`` ... (planes of equal bytes).

Floats' sign and exponent bytes repeat far more than their mantissa bytes: grouped into
planes they compress well. ``param0`` is the number of planes (the element size).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _codec
from ..spec import Encoding
from .base import DecodeError, Encoded, StreamEncoding, StreamHead, empty, register_encoding

__all__ = ["ByteShuffle"]


class ByteShuffle(StreamEncoding):
    """Byte planes of fixed-size values (``param0``: the element size)."""

    id = Encoding.BYTE_SHUFFLE
    name = "byte_shuffle"

    def encode(self, values: np.ndarray, **params: Any) -> Encoded:
        out = np.empty(values.nbytes, dtype=np.uint8)
        _codec.shuffle_bytes(values.view(np.uint8), values.dtype.itemsize, out)
        return Encoded(self.id, out, values.dtype.itemsize, 0)

    def encoded_size(self, head: StreamHead, np_dtype: np.dtype) -> int:
        if head.param0 != np_dtype.itemsize:
            raise DecodeError(f"byte-shuffled stream of {np_dtype} values has {head.param0} planes, "
                              f"expected {np_dtype.itemsize}")
        return head.count * np_dtype.itemsize

    def decode(self, head: StreamHead, raw: bytes | memoryview, np_dtype: np.dtype) -> np.ndarray:
        out = empty(head.count, np_dtype)
        _codec.unshuffle_bytes(np.frombuffer(raw, np.uint8), np_dtype.itemsize, out.view(np.uint8))
        return out


register_encoding(ByteShuffle())

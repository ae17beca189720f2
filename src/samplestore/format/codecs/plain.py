"""Plain: the values' little-endian bytes as they are."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..spec import Encoding
from .base import Encoded, StreamEncoding, StreamHead, register_encoding

__all__ = ["Plain"]


class Plain(StreamEncoding):
    """No transform; decoding is a zero-copy view of the bytes."""

    id = Encoding.PLAIN
    name = "plain"

    def encode(self, values: np.ndarray, **params: Any) -> Encoded:
        return Encoded(self.id, values, 0, 0)

    def encoded_size(self, head: StreamHead, np_dtype: np.dtype) -> int:
        return head.count * np_dtype.itemsize

    def decode(self, head: StreamHead, raw: bytes | memoryview, np_dtype: np.dtype) -> np.ndarray:
        return np.frombuffer(raw, dtype=np_dtype)


register_encoding(Plain())

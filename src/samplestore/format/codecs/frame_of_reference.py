"""Frame of reference: int64 values as ``value - base`` in 1, 2 or 4 bytes.

``param0`` is the base, ``param1`` the width. A lengths stream with base 0 is prefix-summed
straight from the narrow values into int32 offsets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _codec
from ..spec import DType, Encoding
from .base import DecodeError, Encoded, StreamEncoding, StreamHead, empty, register_encoding

__all__ = ["FrameOfReference"]


class FrameOfReference(StreamEncoding):
    """``value - base`` in ``width`` (1, 2 or 4) little-endian bytes."""

    id = Encoding.FOR
    name = "frame_of_reference"

    def encode(self, values: np.ndarray, *, base: int = 0, width: int = 8, **params: Any) -> Encoded | None:
        """Encode with the ``base`` and ``width`` the policy found from the values' range."""
        if width not in (1, 2, 4):
            return None
        out = np.empty(values.shape[0] * width, dtype=np.uint8)
        _codec.for_encode(values, base, width, out)
        return Encoded(self.id, out, int(base), width)

    def encoded_size(self, head: StreamHead, np_dtype: np.dtype) -> int:
        if head.dtype != DType.INT64 or head.param1 not in (1, 2, 4):
            raise DecodeError(f"frame-of-reference stream of {np_dtype} values with width {head.param1}, "
                              "expected int64 values of width 1, 2 or 4")
        return head.count * head.param1

    def decode(self, head: StreamHead, raw: bytes | memoryview, np_dtype: np.dtype) -> np.ndarray:
        out = empty(head.count, np.int64)
        _codec.for_decode(np.frombuffer(raw, np.uint8), head.param0, int(head.param1), out)
        return out

    def decodes_lengths(self, head: StreamHead) -> bool:
        return head.param0 == 0

    def decode_lengths(self, head: StreamHead, raw: bytes | memoryview, out: np.ndarray) -> int:
        return _codec.lengths_to_offsets(np.frombuffer(raw, np.uint8), int(head.param1), out)


register_encoding(FrameOfReference())

"""Dictionary: frequency-ordered distinct values + bit-packed indices.

Payload: the ``param0`` entries, most frequent first and byte-shuffled (ids and float bits
share their high bytes), then the indices packed to ``param1`` (1, 2, 4, 8, 16 or 32) bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _codec
from ..spec import DType, Encoding
from .base import DecodeError, Encoded, StreamEncoding, StreamHead, empty, register_encoding

__all__ = ["Dictionary", "index_bits"]

_DICT_MAX_ENTRIES = 1 << 24


def index_bits(k: int) -> int:
    """Smallest packable index width (1, 2, 4, 8, 16, 32 bits) for a ``k``-entry dictionary."""
    for bits in (1, 2, 4, 8, 16, 32):
        if k <= (1 << bits):
            return bits
    raise ValueError(f"dictionary of {k} entries is too large")


class Dictionary(StreamEncoding):
    """Distinct int64 or float32 values, most frequent first, and packed indices into them."""

    id = Encoding.DICT
    name = "dictionary"

    def encode(self, values: np.ndarray, *, keys: np.ndarray | None = None, beat: int | None = None,
               **params: Any) -> Encoded | None:
        """Dictionary-encode ``values`` (hashed through int64 ``keys``) if that beats ``beat`` bytes."""
        keys = values if keys is None else keys
        beat = values.nbytes if beat is None else beat
        n = values.shape[0]
        itemsize = values.dtype.itemsize
        max_k = min(n // 2, _DICT_MAX_ENTRIES, beat // itemsize)
        if max_k < 2:
            return None
        idx = np.empty(n, dtype=np.uint32)
        entries = np.empty(max_k, dtype=np.int64)
        counts = np.empty(max_k, dtype=np.int64)
        k = _codec.dict_build(keys, max_k, idx, entries, counts)
        if k <= 0:
            return None
        bits = index_bits(k)
        isize = _codec.packed_size(n, bits)
        if k * itemsize + isize >= beat:
            return None
        # Most frequent entry first: small indices dominate, which zstd codes tightly.
        order = np.argsort(-counts[:k], kind="stable")
        rank = np.empty(k, dtype=np.uint32)
        rank[order] = np.arange(k, dtype=np.uint32)
        ent = entries[:k][order].astype(np.dtype(f"<i{itemsize}"))
        payload = np.empty(k * itemsize + isize, dtype=np.uint8)
        _codec.shuffle_bytes(ent.view(np.uint8), itemsize, payload[: k * itemsize])
        _codec.pack_indices(idx, rank, bits, payload[k * itemsize:])
        return Encoded(self.id, payload, k, bits)

    def encoded_size(self, head: StreamHead, np_dtype: np.dtype) -> int:
        bits, k = head.param1, head.param0
        if head.dtype not in (DType.INT64, DType.FLOAT32) or bits not in (1, 2, 4, 8, 16, 32):
            raise DecodeError(f"dictionary stream of {np_dtype} values with {bits}-bit indices, expected "
                              "int64 or float32 values and 1, 2, 4, 8, 16 or 32 bits")
        if not 1 <= k <= (1 << bits):
            raise DecodeError(f"dictionary of {k} entries, expected 1 to {1 << bits} for {bits}-bit indices")
        return k * np_dtype.itemsize + (head.count * bits + 7) // 8

    def decode(self, head: StreamHead, raw: bytes | memoryview, np_dtype: np.dtype) -> np.ndarray:
        src = np.frombuffer(raw, np.uint8)
        k, bits, itemsize = head.param0, int(head.param1), np_dtype.itemsize
        if k < 1 or k * itemsize > len(src) or bits not in (1, 2, 4, 8, 16, 32):
            raise DecodeError(f"dictionary of {k} entries with {bits}-bit indices does not fit a {len(src)}-byte stream")
        int_dtype = np.dtype(f"<i{itemsize}")
        entries = np.empty(k, dtype=int_dtype)
        _codec.unshuffle_bytes(src[: k * itemsize], itemsize, entries.view(np.uint8))
        out = empty(head.count, int_dtype)
        _codec.dict_decode(entries, src[k * itemsize:], bits, out)
        return out.view(np_dtype)


register_encoding(Dictionary())

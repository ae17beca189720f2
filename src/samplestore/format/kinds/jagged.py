"""Jagged kinds: sparse and sequence, a ``lengths`` stream and an ``ids`` stream per chunk.

A weighted sparse feature adds a ``weights`` stream (float32), a sequence with timestamps a
``ts`` stream (int64), parallel to the ids; their Arrow form is then a struct of two lists.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ...schema import Feature
from ..encodings import Hint
from ..spec import DType
from ._buffers import list_parts, minmax, np_view
from .base import ChunkStats, ColumnData, KindCodec, Streams, StreamSpec, register_kind

__all__ = ["JaggedKind"]

_NUMPY = {DType.FLOAT32: np.float32, DType.INT64: np.int64}
_ARROW = {DType.FLOAT32: pa.float32(), DType.INT64: pa.int64()}


class JaggedKind(KindCodec):
    """Lists of int64 ids, with an optional parallel list switched on by the feature's ``flag``.

    Args:
        flag: the feature attribute that switches the second list on (``weighted``).
        second: the second list's role and struct field name (``weights``).
        dtype: its element type (``DType``).
        hint: its encoding hint.
    """

    def __init__(self, flag: str, second: str, dtype: int, hint: str) -> None:
        self.flag, self.second, self.dtype, self.hint = flag, second, dtype, hint

    def _paired(self, feat: Feature) -> bool:
        return bool(getattr(feat, self.flag))

    def streams(self, feat: Feature) -> tuple[StreamSpec, ...]:
        base = (StreamSpec("lengths", DType.INT64, Hint.LENGTHS),
                StreamSpec("ids", DType.INT64, Hint.IDS, rows="lengths"))
        return base + ((StreamSpec(self.second, self.dtype, self.hint, rows="lengths"),) if self._paired(feat) else ())

    def encode(self, feat: Feature, arr: pa.Array) -> tuple[list[np.ndarray], ChunkStats]:
        n = len(arr)
        if pa.types.is_struct(arr.type):
            lengths, ids = list_parts(arr.field(0))
            _, sec = list_parts(arr.field(1))
            streams = [lengths, np_view(ids, np.int64), np_view(sec, _NUMPY[self.dtype])]
        else:
            lengths, ids = list_parts(arr)
            streams = [lengths, np_view(ids, np.int64)]
        lo, hi = minmax(streams[1], False)
        hist = np.bincount(lengths) if n else np.zeros(0, np.int64)
        missing = int(hist[0]) if len(hist) else 0
        return streams, ChunkStats(0, len(streams[1]), lo, hi, missing, hist)

    def decode(self, feat: Feature, streams: Streams, n: int) -> ColumnData:
        nvals = streams.count("ids")
        offsets = streams.offsets("lengths", n, nvals)
        ids = streams.values("ids", nvals)
        second = streams.values(self.second, nvals) if self._paired(feat) else None
        return ColumnData(ids, offsets, second)

    def to_arrow(self, feat: Feature, col: ColumnData, n: int) -> pa.Array:
        offsets = pa.py_buffer(col.offsets)
        ids = pa.Array.from_buffers(pa.int64(), len(col.values), [None, pa.py_buffer(col.values)])
        first = pa.Array.from_buffers(pa.list_(pa.int64()), n, [None, offsets], children=[ids])
        if col.second is None:
            return first
        st = _ARROW[self.dtype]
        sec = pa.Array.from_buffers(st, len(col.second), [None, pa.py_buffer(col.second)])
        second = pa.Array.from_buffers(pa.list_(st), n, [None, offsets], children=[sec])
        return pa.StructArray.from_arrays([first, second], names=["ids", self.second])


register_kind("sparse", JaggedKind("weighted", "weights", DType.FLOAT32, Hint.FLOAT))
register_kind("sequence", JaggedKind("timestamps", "ts", DType.INT64, Hint.ORDERED))

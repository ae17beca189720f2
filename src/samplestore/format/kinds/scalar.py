"""The scalar kind: one nullable value per row (int32/int64/float32/float64/bool/string/timestamp).

Streams: ``validity`` (the Arrow bitmap; empty where the chunk has no nulls), then
``values`` (integers and timestamps widened to int64, floats as they are, bools as a
bitmap), or for strings ``lengths`` and ``bytes``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .. import _codec
from ...schema import Feature
from ..codecs import DecodeError
from ..encodings import Hint
from ..spec import DType
from ._buffers import minmax, np_view
from .base import ChunkStats, ColumnData, KindCodec, Streams, StreamSpec, register_kind

__all__ = ["ScalarKind"]

_VALUES = {"int32": (DType.INT64, Hint.INT), "int64": (DType.INT64, Hint.INT),
           "timestamp": (DType.INT64, Hint.ORDERED), "float32": (DType.FLOAT32, Hint.FLOAT),
           "float64": (DType.FLOAT64, Hint.FLOAT)}


def _validity(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.empty(0, dtype=np.uint8)
    mask = arr.is_valid().to_numpy(zero_copy_only=False)
    return np.packbits(mask, bitorder="little")


def _string_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset: arr.offset + len(arr) + 1]
    data_buf = arr.buffers()[2]
    start, end = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buf, np.uint8)[start:end] if data_buf is not None else np.empty(0, np.uint8)
    return np.diff(offsets).astype(np.int64), data


def _check_utf8(n: int, offsets: np.ndarray, data: np.ndarray, validity: np.ndarray | None) -> None:
    """Every non-null string of a chunk must be valid UTF-8 (Arrow assumes it; Python decodes it)."""
    arr = pa.Array.from_buffers(pa.string(), n, [None if validity is None else pa.py_buffer(validity),
                                                  pa.py_buffer(offsets), pa.py_buffer(data)])
    try:
        arr.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise DecodeError(f"string stream is not valid UTF-8: {exc}") from exc


class ScalarKind(KindCodec):
    """One value per row of ``feat.dtype``, with nulls."""

    def streams(self, feat: Feature) -> tuple[StreamSpec, ...]:
        validity = StreamSpec("validity", DType.UINT8, Hint.BYTES)
        dtype = feat.dtype  # type: ignore[attr-defined]
        if dtype == "string":
            return (validity, StreamSpec("lengths", DType.INT64, Hint.LENGTHS), StreamSpec("bytes", DType.UINT8, Hint.BYTES))
        if dtype == "bool":
            return (validity, StreamSpec("values", DType.UINT8, Hint.BYTES))
        dt, hint = _VALUES[dtype]
        return (validity, StreamSpec("values", dt, hint))

    def encode(self, feat: Feature, arr: pa.Array) -> tuple[list[np.ndarray], ChunkStats]:
        n = len(arr)
        dtype = feat.dtype  # type: ignore[attr-defined]
        validity = _validity(arr)
        nulls = arr.null_count
        if dtype == "string":
            lengths, data = _string_parts(arr)
            return [validity, lengths, data], ChunkStats(nulls, n - nulls, None, None, nulls)
        if dtype == "bool":
            bits = np.packbits(arr.fill_null(False).to_numpy(zero_copy_only=False), bitorder="little")
            return [validity, bits], ChunkStats(nulls, n - nulls, None, None, nulls)
        is_int = dtype in ("int32", "int64", "timestamp")
        if is_int:
            raw = np_view(arr, np.int32 if dtype == "int32" else np.int64).astype(np.int64)
        else:
            raw = np_view(arr, np.float32 if dtype == "float32" else np.float64)
        if nulls:
            raw = np.where(arr.is_valid().to_numpy(zero_copy_only=False), raw, 0)
        valid = raw if not nulls else raw[arr.is_valid().to_numpy(zero_copy_only=False)]
        lo, hi = minmax(valid, not is_int)
        return [validity, raw], ChunkStats(nulls, n - nulls, lo, hi, nulls)

    def decode(self, feat: Feature, streams: Streams, n: int) -> ColumnData:
        dtype = feat.dtype  # type: ignore[attr-defined]
        vcount = streams.count("validity")
        nbytes = (n + 7) // 8
        if vcount not in (0, nbytes):
            raise DecodeError(f"validity stream holds {vcount} bytes, expected 0 or {nbytes}")
        validity = streams.values("validity")  # decoded even when empty: its head is checked too
        validity = validity if vcount else None
        if dtype == "string":
            nbytes_data = streams.count("bytes")
            offsets = streams.offsets("lengths", n, nbytes_data)
            data = streams.values("bytes", nbytes_data)
            _check_utf8(n, offsets, data, validity)
            return ColumnData(data, offsets, None, validity)
        values = streams.values("values", nbytes if dtype == "bool" else n)
        if dtype == "int32" and n:
            lo, hi = _codec.minmax_int64(values)  # stored widened: must still fit the column's type
            if lo < -(2**31) or hi >= 2**31:
                raise DecodeError(f"int32 column holds values from {lo} to {hi}, outside the int32 range")
        return ColumnData(values, None, None, validity)

    def to_arrow(self, feat: Feature, col: ColumnData, n: int) -> pa.Array:
        t = feat.arrow_type()
        validity = pa.py_buffer(col.validity) if col.validity is not None else None
        if feat.dtype == "string":  # type: ignore[attr-defined]
            return pa.Array.from_buffers(t, n, [validity, pa.py_buffer(col.offsets), pa.py_buffer(col.values)])
        values = col.values
        if feat.dtype == "int32":  # type: ignore[attr-defined]
            values = values.astype(np.int32)
        return pa.Array.from_buffers(t, n, [validity, pa.py_buffer(values)])


register_kind("scalar", ScalarKind())

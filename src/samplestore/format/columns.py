"""How each feature kind is laid out as streams in a chunk, and back.

========================= ===============================================================
feature                   streams, in order
========================= ===============================================================
dense, label              values (float32)
embedding                 values (float32, float16 or bfloat16 by ``storage``)
sparse, sequence          lengths, ids
weighted sparse           lengths, ids, weights (float32)
sequence with timestamps  lengths, ids, ts (int64)
scalar (numeric/bool)     validity (bitmap bytes; empty when no nulls), values
scalar string             validity, lengths, bytes
========================= ===============================================================

:class:`ColumnData` is the decoded form used by both the Arrow path and the training path
(plain numpy buffers: values, int32 offsets, optional second value array, validity bitmap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..schema import Dense, Embedding, Feature, Label, Scalar, Sequence, Sparse
from .encodings import Hint
from .spec import STATS_FLOAT, STATS_HAS_MINMAX, DType

__all__ = ["ColumnData", "ChunkStats", "StreamSpec", "stream_specs", "column_streams", "to_arrow"]


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream of a column layout: its role, element type and encoding hint."""

    role: str
    dtype: int
    hint: str


@dataclass(slots=True)
class ColumnData:
    """Decoded buffers of one column chunk (no Arrow objects, no per-row Python).

    Attributes:
        values: flat values (float32 [n*dim] for vectors, int64 ids, label floats, scalar
            values, string bytes).
        offsets: int32 [n+1] row offsets into ``values`` for jagged columns and strings.
        second: weights (float32) or timestamps (int64) parallel to ``values``.
        validity: Arrow-layout validity bitmap (bit i = row i valid) or None if no nulls.
    """

    values: np.ndarray
    offsets: np.ndarray | None = None
    second: np.ndarray | None = None
    validity: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class ChunkStats:
    """Statistics of one chunk: nulls/values/min/max go to the footer; all are summed into
    the catalog (``missing``: nulls, empty lists or NaNs by kind; ``lengths``: histogram of
    list lengths; ``missing_by_dim``: NaNs per slot of a dense vector)."""

    nulls: int
    values: int
    min: float | int | None
    max: float | int | None
    missing: int = 0
    lengths: np.ndarray | None = None
    missing_by_dim: np.ndarray | None = None


def _embedding_dtype(storage: str) -> int:
    return {"float32": DType.FLOAT32, "float16": DType.FLOAT16, "bfloat16": DType.BFLOAT16}[storage]


def stream_specs(feat: Feature) -> tuple[StreamSpec, ...]:
    """The streams a feature's chunk holds, in order."""
    if isinstance(feat, (Dense, Label)):
        return (StreamSpec("values", DType.FLOAT32, Hint.FLOAT),)
    if isinstance(feat, Embedding):
        return (StreamSpec("values", _embedding_dtype(feat.storage), Hint.FLOAT),)
    if isinstance(feat, Sparse):
        base = (StreamSpec("lengths", DType.INT64, Hint.LENGTHS), StreamSpec("ids", DType.INT64, Hint.IDS))
        return base + ((StreamSpec("weights", DType.FLOAT32, Hint.FLOAT),) if feat.weighted else ())
    if isinstance(feat, Sequence):
        base = (StreamSpec("lengths", DType.INT64, Hint.LENGTHS), StreamSpec("ids", DType.INT64, Hint.IDS))
        return base + ((StreamSpec("ts", DType.INT64, Hint.ORDERED),) if feat.timestamps else ())
    if isinstance(feat, Scalar):
        validity = StreamSpec("validity", DType.UINT8, Hint.BYTES)
        if feat.dtype == "string":
            return (validity, StreamSpec("lengths", DType.INT64, Hint.LENGTHS), StreamSpec("bytes", DType.UINT8, Hint.BYTES))
        if feat.dtype == "bool":
            return (validity, StreamSpec("values", DType.UINT8, Hint.BYTES))
        dt = {"int32": DType.INT64, "int64": DType.INT64, "timestamp": DType.INT64,
              "float32": DType.FLOAT32, "float64": DType.FLOAT64}[feat.dtype]
        hint = Hint.ORDERED if feat.dtype == "timestamp" else (Hint.INT if dt == DType.INT64 else Hint.FLOAT)
        return (validity, StreamSpec("values", dt, hint))
    raise TypeError(f"no stream layout for feature kind {feat.kind!r}")


def _np(arr: pa.Array, dtype: np.dtype | str) -> np.ndarray:
    """Zero-copy numpy view of a primitive Arrow array's values (nulls hold whatever is there)."""
    dtype = np.dtype(dtype)
    buf = arr.buffers()[1]
    if buf is None:
        return np.zeros(len(arr), dtype=dtype)
    return np.frombuffer(buf, dtype=dtype)[arr.offset: arr.offset + len(arr)]


def _list_parts(arr: pa.Array) -> tuple[np.ndarray, pa.Array]:
    offsets = arr.offsets.to_numpy()
    return np.diff(offsets).astype(np.int64, copy=False), arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _validity(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.empty(0, dtype=np.uint8)
    mask = arr.is_valid().to_numpy(zero_copy_only=False)
    return np.packbits(mask, bitorder="little")


def _minmax(v: np.ndarray, is_float: bool) -> tuple[float | int | None, float | int | None]:
    if v.size == 0:
        return None, None
    if is_float:
        if np.isnan(v).all():
            return None, None
        return float(np.nanmin(v)), float(np.nanmax(v))
    return int(v.min()), int(v.max())


def _f32_to_bf16(v: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, rounding to nearest even; NaN stays a quiet NaN."""
    u = v.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(v)
    if nan.any():
        rounded[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded


def _bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def column_streams(feat: Feature, arr: pa.Array) -> tuple[list[np.ndarray], ChunkStats]:
    """Split a conformed Arrow array into the feature's stream arrays and compute its stats."""
    n = len(arr)
    if isinstance(feat, (Dense, Label, Embedding)):
        vals = arr.flatten() if pa.types.is_fixed_size_list(arr.type) else arr
        v = _np(vals, np.float32)
        lo, hi = _minmax(v, True)
        nan = np.isnan(v)
        dim = getattr(feat, "dim", 1)
        by_dim = nan.reshape(-1, dim).sum(axis=0) if dim > 1 and n else None
        missing = int(nan.sum())
        if isinstance(feat, Embedding) and feat.storage == "float16":
            v = v.astype(np.float16)
        elif isinstance(feat, Embedding) and feat.storage == "bfloat16":
            v = _f32_to_bf16(np.ascontiguousarray(v))
        return [v], ChunkStats(0, n, lo, hi, missing, None, by_dim)
    if isinstance(feat, (Sparse, Sequence)):
        if pa.types.is_struct(arr.type):
            first, second = arr.field(0), arr.field(1)
            lengths, ids = _list_parts(first)
            _, sec = _list_parts(second)
            sec_np = _np(sec, np.float32 if isinstance(feat, Sparse) else np.int64)
            streams = [lengths, _np(ids, np.int64), sec_np]
        else:
            lengths, ids = _list_parts(arr)
            streams = [lengths, _np(ids, np.int64)]
        lo, hi = _minmax(streams[1], False)
        hist = np.bincount(lengths) if n else np.zeros(0, np.int64)
        missing = int(hist[0]) if len(hist) else 0
        return streams, ChunkStats(0, len(streams[1]), lo, hi, missing, hist)
    if isinstance(feat, Scalar):
        validity = _validity(arr)
        nulls = arr.null_count
        if feat.dtype == "string":
            lengths, data = _list_parts_string(arr)
            return [validity, lengths, data], ChunkStats(nulls, n - nulls, None, None, nulls)
        if feat.dtype == "bool":
            bits = np.packbits(arr.fill_null(False).to_numpy(zero_copy_only=False), bitorder="little")
            return [validity, bits], ChunkStats(nulls, n - nulls, None, None, nulls)
        if feat.dtype in ("int32", "int64", "timestamp"):
            raw = _np(arr, np.int32 if feat.dtype == "int32" else np.int64).astype(np.int64)
            if nulls:
                raw = np.where(arr.is_valid().to_numpy(zero_copy_only=False), raw, 0)
            valid = raw if not nulls else raw[arr.is_valid().to_numpy(zero_copy_only=False)]
            lo, hi = _minmax(valid, False)
            return [validity, raw], ChunkStats(nulls, n - nulls, lo, hi, nulls)
        raw = _np(arr, np.float32 if feat.dtype == "float32" else np.float64)
        if nulls:
            raw = np.where(arr.is_valid().to_numpy(zero_copy_only=False), raw, 0)
        valid = raw if not nulls else raw[arr.is_valid().to_numpy(zero_copy_only=False)]
        lo, hi = _minmax(valid, True)
        return [validity, raw], ChunkStats(nulls, n - nulls, lo, hi, nulls)
    raise TypeError(f"no stream layout for feature kind {feat.kind!r}")


def _list_parts_string(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset: arr.offset + len(arr) + 1]
    data_buf = arr.buffers()[2]
    start, end = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buf, np.uint8)[start:end] if data_buf is not None else np.empty(0, np.uint8)
    return np.diff(offsets).astype(np.int64), data


def stats_flags(stats: ChunkStats, feat: Feature) -> tuple[int, int, int]:
    """(flags, min bits, max bits) of a chunk's stats for the footer's stats table."""
    if stats.min is None or stats.max is None:
        return 0, 0, 0
    if isinstance(stats.min, float):
        lo = np.array([stats.min], np.float64).view(np.int64)[0]
        hi = np.array([stats.max], np.float64).view(np.int64)[0]
        return STATS_HAS_MINMAX | STATS_FLOAT, int(lo), int(hi)
    return STATS_HAS_MINMAX, int(stats.min), int(stats.max)


def to_arrow(feat: Feature, col: ColumnData, n: int) -> pa.Array:
    """Wrap decoded buffers as an Arrow array of the feature's Arrow type (zero-copy where possible)."""
    if isinstance(feat, (Dense, Label, Embedding)):
        v = col.values
        if v.dtype == np.float16:
            v = v.astype(np.float32)
        elif v.dtype == np.uint16:
            v = _bf16_to_f32(v)
        flat = pa.Array.from_buffers(pa.float32(), len(v), [None, pa.py_buffer(v)])
        if isinstance(feat, Label) or (isinstance(feat, Dense) and feat.dim == 1):
            return flat
        return pa.FixedSizeListArray.from_arrays(flat, feat.dim)
    if isinstance(feat, (Sparse, Sequence)):
        offsets = pa.py_buffer(col.offsets)
        ids = pa.Array.from_buffers(pa.int64(), len(col.values), [None, pa.py_buffer(col.values)])
        first = pa.Array.from_buffers(pa.list_(pa.int64()), n, [None, offsets], children=[ids])
        if col.second is None:
            return first
        st = pa.float32() if isinstance(feat, Sparse) else pa.int64()
        sec = pa.Array.from_buffers(st, len(col.second), [None, pa.py_buffer(col.second)])
        second = pa.Array.from_buffers(pa.list_(st), n, [None, offsets], children=[sec])
        names = ["ids", "weights"] if isinstance(feat, Sparse) else ["ids", "ts"]
        return pa.StructArray.from_arrays([first, second], names=names)
    if isinstance(feat, Scalar):
        t = feat.arrow_type()
        validity = pa.py_buffer(col.validity) if col.validity is not None else None
        if feat.dtype == "string":
            return pa.Array.from_buffers(t, n, [validity, pa.py_buffer(col.offsets), pa.py_buffer(col.values)])
        values = col.values
        if feat.dtype == "int32":
            values = values.astype(np.int32)
        return pa.Array.from_buffers(t, n, [validity, pa.py_buffer(values)])
    raise TypeError(f"no stream layout for feature kind {feat.kind!r}")

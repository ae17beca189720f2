"""Vector kinds: dense, label and embedding, one ``values`` stream of ``n * dim`` floats.

Dense and label values are float32; an embedding's are float32, float16 or bfloat16 (the
upper 16 bits of a float32, rounded to nearest even) by its ``storage``, and read back as
float32.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ...schema import Feature
from ..encodings import Hint
from ..spec import DType
from ._buffers import minmax, np_view
from .base import ChunkStats, ColumnData, KindCodec, Streams, StreamSpec, register_kind

__all__ = ["VectorKind", "f32_to_bf16", "bf16_to_f32", "value_bins", "HIST_BINS_PER_OCTAVE", "HIST_MAX_BIN",
           "HIST_SPAN", "HIST_MAX_DIM"]

_STORAGE_DTYPE = {"float32": DType.FLOAT32, "float16": DType.FLOAT16, "bfloat16": DType.BFLOAT16}


def f32_to_bf16(v: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, rounding to nearest even; NaN stays a quiet NaN."""
    u = v.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(v)
    if nan.any():
        rounded[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bits -> float32 (exact)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


#: Value histograms (dense features and labels) use one fixed set of bins, the same in every
#: file, so the histograms of files and partitions merge by adding counts (no quantiles to
#: reconcile). With ``1 + |x| = m * 2**e`` (``1 <= m < 2``, float32), a value's bin is
#: ``k = 8 * e + floor(8 * (m - 1))`` for ``x >= 0`` and ``-1 - k`` for ``x < 0``: eight bins
#: per doubling of ``1 + |x|``, read off the float's exponent and top three mantissa bits
#: (0 is bin 0, 1 is bin 8, 3 is bin 16; +-inf the outermost bins, +-1024).
HIST_BINS_PER_OCTAVE = 8
#: |bin| <= 1025 (inf included).
HIST_MAX_BIN = 1040
#: Keys of a histogram: ``slot * HIST_SPAN + bin + HIST_MAX_BIN``.
HIST_SPAN = 2 * HIST_MAX_BIN + 1
#: Wider dense features keep no histogram (it would be dim x bins figures per file).
HIST_MAX_DIM = 64


def value_bins(v: np.ndarray) -> np.ndarray:
    """The histogram bin (int32, see :data:`HIST_BINS_PER_OCTAVE`) of each value (NaN: any)."""
    v = np.asarray(v, dtype=np.float32)
    # In place, one temporary: a chunk's values are a few hundred kB, and fresh arrays of that
    # size cost more in page faults than the arithmetic.
    y = np.abs(v)
    y += np.float32(1.0)
    k = y.view(np.int32)
    k >>= 20
    k -= 127 << 3
    np.subtract(-1, k, out=k, where=v < 0)
    return k


def _value_stats(feat: Feature, v: np.ndarray, nan: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The value histogram (keys, counts) of a dense feature or label (see value_bins)."""
    if feat.kind not in ("dense", "label") or not len(v) or dim > HIST_MAX_DIM:
        return None
    keys = value_bins(v).reshape(-1, dim)
    keys += (np.arange(dim, dtype=np.int32) * HIST_SPAN + HIST_MAX_BIN)[None, :]
    keys = keys.reshape(-1)
    if keys.size < dim * HIST_SPAN // 8:
        # A small chunk (a wide table's, a short row group's): sorting its few keys costs
        # less than a count array over every bin.
        nz, counts = np.unique(keys[~nan] if nan.any() else keys, return_counts=True)
        return nz.astype(np.int64), counts.astype(np.int64)
    keys[nan] = dim * HIST_SPAN  # one extra key, dropped below
    counts = np.bincount(keys, minlength=dim * HIST_SPAN + 1)[:-1]
    nz = np.flatnonzero(counts)
    return nz, counts[nz]


def _dim(feat: Feature) -> int:
    return getattr(feat, "dim", 1)


def _storage(feat: Feature) -> str:
    return getattr(feat, "storage", "float32")


class VectorKind(KindCodec):
    """``dim`` floats per row (a label is ``dim`` 1), no nulls; NaN counts as missing."""

    def streams(self, feat: Feature) -> tuple[StreamSpec, ...]:
        return (StreamSpec("values", _STORAGE_DTYPE[_storage(feat)], Hint.FLOAT),)

    def encode(self, feat: Feature, arr: pa.Array) -> tuple[list[np.ndarray], ChunkStats]:
        n = len(arr)
        vals = arr.flatten() if pa.types.is_fixed_size_list(arr.type) else arr
        v = np_view(vals, np.float32)
        lo, hi = minmax(v, True)
        nan = np.isnan(v)
        dim = _dim(feat)
        by_dim = nan.reshape(-1, dim).sum(axis=0) if dim > 1 and n else None
        missing = int(nan.sum())
        # Per slot, so the catalog can give per-dimension means without reading the data.
        with np.errstate(invalid="ignore", over="ignore"):  # +inf and -inf sum to NaN, as they should
            sums = np.where(nan, np.float32(0), v).reshape(-1, dim).sum(axis=0, dtype=np.float64)
        hist = _value_stats(feat, v, nan, dim)
        storage = _storage(feat)
        if storage == "float16":
            v = v.astype(np.float16)
        elif storage == "bfloat16":
            v = f32_to_bf16(np.ascontiguousarray(v))
        return [v], ChunkStats(0, n, lo, hi, missing, None, by_dim, sum_by_dim=sums, histogram=hist)

    def decode(self, feat: Feature, streams: Streams, n: int) -> ColumnData:
        return ColumnData(streams.values("values", n * _dim(feat)))

    def missing_slots(self, feat: Feature, rows: int) -> int:
        return rows * _dim(feat)  # missing counts NaN slots

    def to_arrow(self, feat: Feature, col: ColumnData, n: int) -> pa.Array:
        v = col.values
        if v.dtype == np.float16:
            v = v.astype(np.float32)
        elif v.dtype == np.uint16:
            v = bf16_to_f32(v)
        flat = pa.Array.from_buffers(pa.float32(), len(v), [None, pa.py_buffer(v)])
        if not pa.types.is_fixed_size_list(feat.arrow_type()):  # a label, or dense of dim 1
            return flat
        return pa.FixedSizeListArray.from_arrays(flat, _dim(feat))


VECTOR = VectorKind()
for _kind in ("dense", "label", "embedding"):
    register_kind(_kind, VECTOR)

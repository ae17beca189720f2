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

Each kind's layout lives in its own module of :mod:`samplestore.format.kinds`, registered by
kind name; the functions here look the kind up and hold no per-kind code.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..schema import Feature
from .kinds import ChunkStats, ColumnData, Streams, StreamSpec, default_column, kind_codec
from .kinds.vector import bf16_to_f32
from .spec import STATS_FLOAT, STATS_HAS_MINMAX

__all__ = [
    "ColumnData", "ChunkStats", "StreamSpec", "stream_specs", "column_streams", "decode_column", "to_arrow",
    "default_column", "stats_flags", "bf16_to_f32",
]


def stream_specs(feat: Feature) -> tuple[StreamSpec, ...]:
    """The streams a feature's chunk holds, in order."""
    return kind_codec(feat).streams(feat)


def column_streams(feat: Feature, arr: pa.Array) -> tuple[list[np.ndarray], ChunkStats]:
    """Split a conformed Arrow array into the feature's stream arrays and compute its stats."""
    return kind_codec(feat).encode(feat, arr)


def decode_column(feat: Feature, streams: Streams, n: int) -> ColumnData:
    """Decoded buffers of ``n`` rows of ``feat`` from its chunk's streams."""
    return kind_codec(feat).decode(feat, streams, n)


def to_arrow(feat: Feature, col: ColumnData, n: int) -> pa.Array:
    """Wrap decoded buffers as an Arrow array of the feature's Arrow type (zero-copy where possible)."""
    return kind_codec(feat).to_arrow(feat, col, n)


def stats_flags(stats: ChunkStats, feat: Feature) -> tuple[int, int, int]:
    """(flags, min bits, max bits) of a chunk's stats for the footer's stats table."""
    if stats.min is None or stats.max is None:
        return 0, 0, 0
    if isinstance(stats.min, float):
        lo = np.array([stats.min], np.float64).view(np.int64)[0]
        hi = np.array([stats.max], np.float64).view(np.int64)[0]
        return STATS_HAS_MINMAX | STATS_FLOAT, int(lo), int(hi)
    return STATS_HAS_MINMAX, int(stats.min), int(stats.max)

"""The feature-kind registry of the file format: how a kind's column becomes streams and back.

A :class:`KindCodec` knows, for one feature kind (``Feature.kind``), the streams its chunk
holds (:meth:`~KindCodec.streams`), how a conformed Arrow array becomes those streams and
their statistics (:meth:`~KindCodec.encode`), how decoded streams become a
:class:`ColumnData` (:meth:`~KindCodec.decode`) and how that becomes the kind's Arrow form
(:meth:`~KindCodec.to_arrow`). Codecs are registered by kind name (:func:`register_kind`),
as numcodecs registers codecs by id; the reader and writer look them up and hold no per-kind
code. The kind's default for rows of files written before it existed is
``Feature.default_array`` (schema.py), turned into decoded buffers by :func:`default_column`.
How the training path batches a kind is registered in ``samplestore.torch`` (format does
not import torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ...registry import Registry
from ...schema import Feature
from ..encodings import decode_offsets, decode_stream
from ..codecs import DecodeError, StreamHead

__all__ = [
    "StreamSpec",
    "ColumnData",
    "ChunkStats",
    "Streams",
    "ChunkStreams",
    "ArrayStreams",
    "KindCodec",
    "register_kind",
    "unregister_kind",
    "kind_codec",
    "registered_kinds",
    "default_column",
]


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream of a column layout: its role, element type and encoding hint.

    ``encoding`` pins a registered encoding id for the stream instead of the policy's choice.
    ``rows`` names the lengths stream whose rows this stream's values belong to (the ids of
    a jagged column): the writer hands those lengths to the encoding policy, which may then
    store a row against an earlier one (the cross-row encoding).
    """

    role: str
    dtype: int
    hint: str
    encoding: int | None = None
    rows: str | None = None


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
    list lengths; ``missing_by_dim``: NaNs per slot of a dense vector; ``sum_by_dim``: float64
    sum of the non-NaN values per slot of a vector, from which the catalog's means come;
    ``histogram``: (keys, counts) of a dense feature's or label's values in the fixed bins of
    :func:`~samplestore.format.kinds.vector.value_bins`, key = slot * ``HIST_SPAN`` + bin)."""

    nulls: int
    values: int
    min: float | int | None
    max: float | int | None
    missing: int = 0
    lengths: np.ndarray | None = None
    missing_by_dim: np.ndarray | None = None
    sum_by_dim: np.ndarray | None = None
    histogram: tuple[np.ndarray, np.ndarray] | None = None


class Streams:
    """The streams of one chunk by role, as a kind's decoder asks for them."""

    __slots__ = ()

    def count(self, role: str) -> int:
        """How many values the ``role`` stream holds."""
        raise NotImplementedError

    def values(self, role: str, count: int | None = None) -> np.ndarray:
        """The decoded ``role`` stream; :class:`DecodeError` unless it holds ``count`` values."""
        raise NotImplementedError

    def offsets(self, role: str, num_rows: int, num_values: int) -> np.ndarray:
        """The ``role`` lengths stream as int32 offsets (``num_rows + 1``), checked against
        ``num_values``."""
        raise NotImplementedError


class ChunkStreams(Streams):
    """Streams of a chunk read from a file: heads checked, decoded on demand."""

    __slots__ = ("_roles", "_heads", "_datas")

    def __init__(self, specs: tuple[StreamSpec, ...], heads: list[StreamHead], datas: list[memoryview]) -> None:
        self._roles = {s.role: i for i, s in enumerate(specs)}
        self._heads = heads
        self._datas = datas

    def count(self, role: str) -> int:
        return self._heads[self._roles[role]].count

    def values(self, role: str, count: int | None = None) -> np.ndarray:
        i = self._roles[role]
        if count is not None and self._heads[i].count != count:
            raise DecodeError(f"{role} stream holds {self._heads[i].count} values, expected {count}")
        return decode_stream(self._heads[i], self._datas[i])

    def offsets(self, role: str, num_rows: int, num_values: int) -> np.ndarray:
        i = self._roles[role]
        return decode_offsets(self._heads[i], self._datas[i], num_rows, num_values)


class ArrayStreams(Streams):
    """Streams held as the arrays :meth:`KindCodec.encode` made (no bytes in between)."""

    __slots__ = ("_arrays",)

    def __init__(self, specs: tuple[StreamSpec, ...], arrays: list[np.ndarray]) -> None:
        self._arrays = {s.role: a for s, a in zip(specs, arrays)}

    def count(self, role: str) -> int:
        return len(self._arrays[role])

    def values(self, role: str, count: int | None = None) -> np.ndarray:
        v = self._arrays[role]
        if count is not None and len(v) != count:
            raise DecodeError(f"{role} stream holds {len(v)} values, expected {count}")
        return v

    def offsets(self, role: str, num_rows: int, num_values: int) -> np.ndarray:
        out = np.zeros(num_rows + 1, np.int32)
        np.cumsum(self._arrays[role], out=out[1:])
        return out


class KindCodec:
    """How one feature kind is stored: its streams, encoder, decoder and Arrow form.

    Instances hold no state per column; one may serve several kinds (dense and label share
    one). Register with :func:`register_kind`.
    """

    def streams(self, feat: Feature) -> tuple[StreamSpec, ...]:
        """The streams a chunk of ``feat`` holds, in order."""
        raise NotImplementedError

    def encode(self, feat: Feature, arr: pa.Array) -> tuple[list[np.ndarray], ChunkStats]:
        """Split a conformed Arrow array into the stream arrays and compute the chunk's stats."""
        raise NotImplementedError

    def decode(self, feat: Feature, streams: Streams, n: int) -> ColumnData:
        """Decoded buffers of a chunk of ``n`` rows from its streams, every count checked.

        Raises:
            DecodeError: a stream does not hold what ``n`` rows of ``feat`` need.
        """
        raise NotImplementedError

    def to_arrow(self, feat: Feature, col: ColumnData, n: int) -> pa.Array:
        """The decoded buffers as an Arrow array of ``feat.arrow_type()`` (zero-copy where possible)."""
        raise NotImplementedError

    def missing_slots(self, feat: Feature, rows: int) -> int:
        """How many values ``rows`` rows hold where :attr:`ChunkStats.missing` counts: one
        per row, unless a kind counts finer (a vector's NaN slots)."""
        return rows


_REGISTRY: Registry[str, KindCodec] = Registry("storage codec of feature kind")


def register_kind(kind: str, codec: KindCodec, *, replace: bool = False) -> KindCodec:
    """Store features of ``kind`` (``Feature.kind``) with ``codec``; returns the codec.

    Raises:
        ValueError: another codec is registered for ``kind`` and ``replace`` is false.
    """
    return _REGISTRY.register(kind, codec, replace=replace)


def unregister_kind(kind: str) -> KindCodec:
    """Forget the codec of ``kind``; returns it.

    Raises:
        KeyError: no codec is registered for ``kind``.
    """
    return _REGISTRY.unregister(kind)


def kind_codec(feat: Feature) -> KindCodec:
    """The codec that stores ``feat``'s kind.

    Raises:
        TypeError: no codec is registered for the kind.
    """
    codec = _REGISTRY.get(feat.kind)
    if codec is None:
        raise TypeError(f"no stream layout for feature kind {feat.kind!r} (feature {feat.name!r}); "
                        f"registered kinds: {_REGISTRY.keys()}")
    return codec


def registered_kinds() -> list[str]:
    """The kinds that have a storage codec."""
    return _REGISTRY.keys()


def default_column(feat: Feature, n: int) -> ColumnData:
    """``n`` rows of ``feat``'s default as decoded buffers, for files written before it existed.

    The default itself is ``feat.default_array`` (one per kind, in schema.py); this runs it
    through the kind's own encoder and decoder, so the training path gets it in exactly the
    layout a stored chunk decodes to.
    """
    codec = kind_codec(feat)
    arrays, _ = codec.encode(feat, feat.default_array(n))
    return codec.decode(feat, ArrayStreams(codec.streams(feat), arrays), n)

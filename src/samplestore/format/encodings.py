"""Stream encodings: which one to use for a stream (policy), and encode/decode by id.

A *stream* is one typed array of a chunk (a column's lengths, ids, weights, validity ...).
Each stream is encoded (plain, byte shuffle, delta+zigzag+varint, frame of reference,
dictionary), then compressed by a codec (zstd or none), and described by a fixed 48-byte
head (:data:`~samplestore.format.spec.STREAM_HEAD`). The loops are Cython kernels in
``csrc/codec.pyx``; this module only decides and checks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import zstandard

from .. import _codec
from .spec import DTYPE_NUMPY, STREAM_HEAD, Codec, DType, Encoding

__all__ = ["StreamHead", "Hint", "encode_stream", "decode_stream", "decode_offsets", "Compressor"]

# Below this many bytes a transform cannot pay for itself.
_MIN_TRANSFORM_BYTES = 64
_DICT_MAX_ENTRIES = 1 << 24


class Hint:
    """What a stream holds, which narrows the encodings worth trying."""

    LENGTHS = "lengths"  # small non-negative list lengths
    IDS = "ids"  # categorical ids: often few distinct values per chunk
    ORDERED = "ordered"  # near-monotone integers: timestamps, row ids
    INT = "int"  # any integer column
    FLOAT = "float"
    BYTES = "bytes"  # opaque bytes: string data, bitmaps


@dataclass(frozen=True, slots=True)
class StreamHead:
    """The decoded 48-byte head of one stream."""

    encoding: int
    codec: int
    dtype: int
    count: int
    encoded_size: int
    stored_size: int
    param0: int = 0
    param1: int = 0

    def pack(self) -> bytes:
        return STREAM_HEAD.pack(
            self.encoding, self.codec, self.dtype, 0, 0, self.count,
            self.encoded_size, self.stored_size, self.param0, self.param1,
        )

    @classmethod
    def unpack_from(cls, buf: bytes | memoryview, offset: int) -> "StreamHead":
        enc, codec, dtype, _flags, _res, count, esize, ssize, p0, p1 = STREAM_HEAD.unpack_from(buf, offset)
        return cls(enc, codec, dtype, count, esize, ssize, p0, p1)


class Compressor:
    """A codec with its level; one per writer (zstd contexts are not shareable across threads)."""

    def __init__(self, codec: str = "zstd", level: int = 3) -> None:
        if codec not in ("zstd", "none"):
            raise ValueError(f"compression must be 'zstd' or 'none', found {codec!r}")
        self.codec = Codec.ZSTD if codec == "zstd" else Codec.NONE
        self.level = level
        self._zstd = zstandard.ZstdCompressor(level=level) if self.codec == Codec.ZSTD else None

    def compress(self, payload: bytes | memoryview) -> tuple[int, bytes | memoryview]:
        """Compress ``payload``; fall back to no codec where zstd does not make it smaller."""
        if self._zstd is None or len(payload) < _MIN_TRANSFORM_BYTES:
            return Codec.NONE, payload
        out = self._zstd.compress(payload)
        if len(out) >= len(payload):
            return Codec.NONE, payload
        return Codec.ZSTD, out


_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "zstd", None)
    if d is None:
        d = _local.zstd = zstandard.ZstdDecompressor()
    return d


def _width(span: int) -> int:
    """Bytes needed for unsigned values up to ``span`` (1, 2, 4), or 8 if they do not fit 4."""
    if span < (1 << 8):
        return 1
    if span < (1 << 16):
        return 2
    if span < (1 << 32):
        return 4
    return 8


def _encode_int(values: np.ndarray, hint: str) -> tuple[int, bytes | memoryview | np.ndarray, int, int]:
    """Pick the smallest integer encoding among those the hint allows."""
    n = values.shape[0]
    lo, hi = _codec.minmax_int64(values)
    if hint == Hint.LENGTHS:
        lo = min(lo, 0)  # base 0: the reader prefix-sums narrow lengths straight into offsets
    span = int(hi) - int(lo)
    w = _width(span)
    best: tuple[int, object, int, int]
    if w < 8:
        out = np.empty(n * w, dtype=np.uint8)
        _codec.for_encode(values, lo, w, out)
        best = (Encoding.FOR, out, int(lo), w)
        best_size = n * w
    else:
        best = (Encoding.PLAIN, values, 0, 0)
        best_size = n * 8
    if hint == Hint.LENGTHS:
        return best  # type: ignore[return-value]
    if hint in (Hint.IDS, Hint.INT) and n >= 64 and best_size > n:
        max_k = min(n // 2, _DICT_MAX_ENTRIES)
        idx = np.empty(n, dtype=np.uint32)
        entries = np.empty(max_k, dtype=np.int64)
        counts = np.empty(max_k, dtype=np.int64)
        k = _codec.dict_build(values, max_k, idx, entries, counts)
        if k > 0:
            wk = _width(k - 1)
            size = k * 8 + n * wk
            if wk < 8 and size < best_size:
                # Most frequent entry first: small indices dominate, which zstd codes tightly.
                order = np.argsort(-counts[:k], kind="stable")
                rank = np.empty(k, dtype=np.uint32)
                rank[order] = np.arange(k, dtype=np.uint32)
                payload = np.empty(k * 8 + n * wk, dtype=np.uint8)
                payload[: k * 8] = entries[:k][order].view(np.uint8)
                _codec.remap_narrow(idx, rank, wk, payload[k * 8:])
                best = (Encoding.DICT, payload, k, wk)
                best_size = size
    if hint in (Hint.ORDERED, Hint.INT) and n >= 2:
        buf = np.empty(10 * n, dtype=np.uint8)
        size = _codec.delta_varint_encode(values, buf)
        if size < best_size:
            best = (Encoding.DELTA_VARINT, buf[:size], 0, 0)
            best_size = size
    return best  # type: ignore[return-value]


def encode_stream(values: np.ndarray, dtype: int, hint: str, compressor: Compressor) -> tuple[StreamHead, bytes | memoryview]:
    """Encode and compress one stream; return its head and stored bytes."""
    np_dtype = DTYPE_NUMPY[dtype]
    values = np.ascontiguousarray(values, dtype=np_dtype)
    n = values.shape[0]
    enc, p0, p1 = Encoding.PLAIN, 0, 0
    payload: object = values
    if values.nbytes >= _MIN_TRANSFORM_BYTES:
        if dtype == DType.INT64:
            enc, payload, p0, p1 = _encode_int(values, hint)
        elif dtype in (DType.FLOAT32, DType.FLOAT64, DType.FLOAT16, DType.BFLOAT16) and np_dtype.itemsize > 1:
            out = np.empty(values.nbytes, dtype=np.uint8)
            _codec.shuffle_bytes(values.view(np.uint8), np_dtype.itemsize, out)
            enc, payload, p0 = Encoding.BYTE_SHUFFLE, out, np_dtype.itemsize
    raw = memoryview(payload).cast("B") if isinstance(payload, np.ndarray) else memoryview(payload)  # type: ignore[arg-type]
    codec, stored = compressor.compress(raw)
    head = StreamHead(enc, codec, dtype, n, len(raw), len(stored), p0, p1)
    return head, stored


class DecodeError(ValueError):
    """A stream's bytes do not decode as its head says (the caller adds file/column context)."""


def _decompress(head: StreamHead, data: memoryview) -> memoryview | bytes:
    if head.codec == Codec.NONE:
        if head.encoded_size != len(data):
            raise DecodeError(f"stream holds {len(data)} bytes, its head says {head.encoded_size}")
        return data
    if head.codec == Codec.ZSTD:
        try:
            out = _decompressor().decompress(data, max_output_size=head.encoded_size)
        except zstandard.ZstdError as exc:
            raise DecodeError(f"zstd stream does not decompress: {exc}") from exc
        if len(out) != head.encoded_size:
            raise DecodeError(f"zstd stream decompressed to {len(out)} bytes, its head says {head.encoded_size}")
        return out
    raise DecodeError(f"unknown codec id {head.codec}")


def decode_stream(head: StreamHead, data: memoryview) -> np.ndarray:
    """Decompress and decode one stream into a numpy array of ``head.count`` elements."""
    np_dtype = DTYPE_NUMPY.get(head.dtype)
    if np_dtype is None:
        raise DecodeError(f"unknown element type id {head.dtype}")
    raw = _decompress(head, data)
    n = head.count
    enc = head.encoding
    try:
        if enc == Encoding.PLAIN:
            if len(raw) != n * np_dtype.itemsize:
                raise DecodeError(f"plain stream of {len(raw)} bytes for {n} values of {np_dtype}")
            return np.frombuffer(raw, dtype=np_dtype)
        if enc == Encoding.BYTE_SHUFFLE:
            if head.param0 != np_dtype.itemsize or len(raw) != n * np_dtype.itemsize:
                raise DecodeError(f"byte-shuffled stream of {len(raw)} bytes for {n} values of {np_dtype}")
            out = np.empty(n, dtype=np_dtype)
            _codec.unshuffle_bytes(np.frombuffer(raw, np.uint8), np_dtype.itemsize, out.view(np.uint8))
            return out
        if head.dtype != DType.INT64:
            raise DecodeError(f"{Encoding.NAMES.get(enc, enc)} encoding on a non-int64 stream")
        out = np.empty(n, dtype=np.int64)
        src = np.frombuffer(raw, np.uint8)
        if enc == Encoding.FOR:
            _codec.for_decode(src, head.param0, int(head.param1), out)
        elif enc == Encoding.DELTA_VARINT:
            _codec.delta_varint_decode(src, out)
        elif enc == Encoding.DICT:
            k, w = head.param0, head.param1
            if k < 0 or k * 8 > len(src):
                raise DecodeError(f"dictionary of {k} entries does not fit a {len(src)}-byte stream")
            _codec.dict_decode(src[: k * 8].view(np.int64), src[k * 8:], int(w), out)
        else:
            raise DecodeError(f"unknown encoding id {enc}")
        return out
    except DecodeError:
        raise
    except ValueError as exc:
        raise DecodeError(str(exc)) from exc


def decode_offsets(head: StreamHead, data: memoryview, num_rows: int, num_values: int) -> np.ndarray:
    """Decode a lengths stream straight into int32 offsets (``num_rows + 1`` entries).

    Checks that there is one length per row, none negative, summing to ``num_values``.
    """
    if head.count != num_rows or head.dtype != DType.INT64:
        raise DecodeError(f"lengths stream holds {head.count} entries for {num_rows} rows")
    out = np.empty(num_rows + 1, dtype=np.int32)
    try:
        if head.encoding == Encoding.FOR and head.param0 == 0:
            raw = _decompress(head, data)
            total = _codec.lengths_to_offsets(np.frombuffer(raw, np.uint8), int(head.param1), out)
        else:
            lengths = decode_stream(head, data)
            if num_rows and lengths.min() < 0:
                raise DecodeError("lengths stream holds a negative length")
            out[0] = 0
            acc = np.cumsum(lengths)
            total = int(acc[-1]) if num_rows else 0
            if total >= 2**31:
                raise DecodeError("lengths add up to more than an int32 offset can hold")
            out[1:] = acc
    except DecodeError:
        raise
    except ValueError as exc:
        raise DecodeError(str(exc)) from exc
    if total != num_values:
        raise DecodeError(f"lengths add up to {total}, but the values stream holds {num_values}")
    return out

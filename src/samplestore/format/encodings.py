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
import pyarrow as pa
import zstandard

from .. import _codec
from .spec import DTYPE_NUMPY, STREAM_HEAD, Codec, DType, Encoding

__all__ = ["StreamHead", "Hint", "encode_stream", "decode_stream", "decode_offsets", "Compressor", "empty"]

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
        # Byte planes of floats hold almost no repeats worth a match: with the longest minimum
        # match zstd codes them as Huffman literals, which is smaller and decodes ~1.5x faster
        # than what the level's default match finder leaves behind.
        self._zstd_planes = zstandard.ZstdCompressor(
            compression_params=zstandard.ZstdCompressionParameters.from_level(level, min_match=7)
        ) if self.codec == Codec.ZSTD else None

    def compress(self, payload: bytes | memoryview) -> tuple[int, bytes | memoryview]:
        """Compress ``payload``; fall back to no codec where zstd does not make it smaller."""
        if self._zstd is None or len(payload) < _MIN_TRANSFORM_BYTES:
            return Codec.NONE, payload
        out = self._zstd.compress(payload)
        if len(out) >= len(payload):
            return Codec.NONE, payload
        return Codec.ZSTD, out

    def compress_planes(self, payload: np.ndarray, planes: int) -> tuple[int, bytes | memoryview]:
        """Compress each of ``planes`` equal byte planes on its own; keep a plane raw where
        zstd does not shrink it (random mantissa bytes), so reading it costs a copy only."""
        size = len(payload)
        if self._zstd_planes is None or size < _MIN_TRANSFORM_BYTES or size % planes:
            return self.compress(memoryview(payload))
        step = size // planes
        parts, sizes, any_packed = [], [], False
        for i in range(planes):
            plane = memoryview(payload[i * step:(i + 1) * step])
            out = self._zstd_planes.compress(plane)
            if len(out) < step * 15 // 16:
                parts.append(out)
                any_packed = True
            else:
                parts.append(plane)
            sizes.append(len(parts[-1]))
        if not any_packed:
            return Codec.NONE, memoryview(payload)
        return Codec.ZSTD_PLANES, b"".join([np.asarray(sizes, "<u4").tobytes(), *parts])


_local = threading.local()


def empty(n: int, dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised array of ``n`` elements in Arrow's memory pool.

    Decoded buffers come from the pool rather than ``malloc``: glibc serves large requests
    with fresh ``mmap`` pages, so every chunk read would pay a page fault per 4 KiB, while the
    pool reuses memory already mapped. The arrays also hand their buffer to Arrow unchanged.
    """
    dt = np.dtype(dtype)
    return np.frombuffer(pa.allocate_buffer(n * dt.itemsize), dtype=dt, count=n)


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


def _index_bits(k: int) -> int:
    """Smallest packable index width (1, 2, 4, 8, 16, 32 bits) for a ``k``-entry dictionary."""
    for bits in (1, 2, 4, 8, 16, 32):
        if k <= (1 << bits):
            return bits
    raise ValueError(f"dictionary of {k} entries is too large")


def _dictionary(values: np.ndarray, keys: np.ndarray, beat: int) -> tuple[int, np.ndarray, int, int] | None:
    """Dictionary-encode ``values`` (hashed through int64 ``keys``) if that beats ``beat`` bytes.

    Payload: the entries, most frequent first and byte-shuffled (ids and float bits share
    their high bytes), then the indices bit-packed to the narrowest width.
    """
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
    bits = _index_bits(k)
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
    return Encoding.DICT, payload, k, bits


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
        d = _dictionary(values, values, best_size)
        if d is not None:
            best, best_size = d, len(d[1])
    if hint in (Hint.ORDERED, Hint.INT) and n >= 2:
        buf = np.empty(10 * n, dtype=np.uint8)
        size = _codec.delta_varint_encode(values, buf)
        if size < best_size:
            best = (Encoding.DELTA_VARINT, buf[:size], 0, 0)
            best_size = size
    return best  # type: ignore[return-value]


def _shuffled(values: np.ndarray) -> np.ndarray:
    out = np.empty(values.nbytes, dtype=np.uint8)
    _codec.shuffle_bytes(values.view(np.uint8), values.dtype.itemsize, out)
    return out


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
        elif dtype == DType.FLOAT32:
            # Counts, log-counts and labels take few distinct values: a dictionary wins there.
            d = _dictionary(values, values.view(np.int32).astype(np.int64), values.nbytes * 3 // 4)
            if d is not None:
                enc, payload, p0, p1 = d
            else:
                enc, payload, p0 = Encoding.BYTE_SHUFFLE, _shuffled(values), 4
        elif dtype in (DType.FLOAT64, DType.FLOAT16, DType.BFLOAT16):
            enc, payload, p0 = Encoding.BYTE_SHUFFLE, _shuffled(values), np_dtype.itemsize
    raw = memoryview(payload).cast("B") if isinstance(payload, np.ndarray) else memoryview(payload)  # type: ignore[arg-type]
    if enc == Encoding.BYTE_SHUFFLE:
        codec, stored = compressor.compress_planes(payload, p0)  # type: ignore[arg-type]
    else:
        codec, stored = compressor.compress(raw)
    head = StreamHead(enc, codec, dtype, n, len(raw), len(stored), p0, p1)
    return head, stored


class DecodeError(ValueError):
    """A stream's bytes do not decode as its head says (the caller adds file/column context)."""


#: zstd never expands data more than this: a block decodes to at most 128 KiB and takes at
#: least 4 stored bytes (an RLE block: a 3-byte block header and the repeated byte), so a
#: frame of ``s`` bytes decodes to at most ``32768 * s`` bytes, whatever its header declares.
ZSTD_MAX_EXPANSION = 32768


def _check_head(head: StreamHead, np_dtype: np.dtype) -> None:
    """Check a head's sizes and parameters against each other, before anything is allocated.

    The decoded size each encoding implies (``count`` values of the element type, the
    width, the dictionary's entries and packed indices ...) must be the encoded size the
    head records, and that must fit in the stored bytes the codec can expand: so nothing a
    file declares can make a reader allocate more than its bytes can actually hold.
    """
    n, esize, item, enc = head.count, head.encoded_size, np_dtype.itemsize, head.encoding
    name = Encoding.NAMES.get(enc, f"encoding id {enc}")
    if enc in (Encoding.PLAIN, Encoding.BYTE_SHUFFLE):
        if enc == Encoding.BYTE_SHUFFLE and head.param0 != item:
            raise DecodeError(f"byte-shuffled stream of {np_dtype} values has {head.param0} planes, expected {item}")
        want = n * item
    elif enc == Encoding.FOR:
        if head.dtype != DType.INT64 or head.param1 not in (1, 2, 4):
            raise DecodeError(f"frame-of-reference stream of {np_dtype} values with width {head.param1}, "
                              "expected int64 values of width 1, 2 or 4")
        want = n * head.param1
    elif enc == Encoding.DICT:
        bits, k = head.param1, head.param0
        if head.dtype not in (DType.INT64, DType.FLOAT32) or bits not in (1, 2, 4, 8, 16, 32):
            raise DecodeError(f"dictionary stream of {np_dtype} values with {bits}-bit indices, expected "
                              "int64 or float32 values and 1, 2, 4, 8, 16 or 32 bits")
        if not 1 <= k <= (1 << bits):
            raise DecodeError(f"dictionary of {k} entries, expected 1 to {1 << bits} for {bits}-bit indices")
        want = k * item + (n * bits + 7) // 8
    elif enc == Encoding.DELTA_VARINT:
        if head.dtype != DType.INT64:
            raise DecodeError(f"delta varint encoding on a {np_dtype} stream")
        if not n <= esize <= 10 * n:
            raise DecodeError(f"delta varint stream of {n} values holds {esize} bytes, expected {n} to {10 * n}")
        want = esize
    else:
        raise DecodeError(f"unknown encoding id {enc}")
    if esize != want:
        raise DecodeError(f"{name} stream of {n} {np_dtype} values takes {want} bytes, its head says {esize}")
    stored = head.stored_size
    if head.codec == Codec.NONE:
        if stored != esize:
            raise DecodeError(f"uncompressed stream stores {stored} bytes, its head says {esize}")
    elif head.codec in (Codec.ZSTD, Codec.ZSTD_PLANES):
        if esize > ZSTD_MAX_EXPANSION * stored:
            raise DecodeError(f"zstd stream of {stored} bytes cannot decode to the {esize} bytes its head says")
        if head.codec == Codec.ZSTD_PLANES and enc != Encoding.BYTE_SHUFFLE:
            raise DecodeError(f"plane-wise zstd on a {name} stream, expected byte shuffle")
    else:
        raise DecodeError(f"unknown codec id {head.codec}")


def _zstd(data: memoryview | bytes, size: int, what: str) -> bytes:
    """Decompress one zstd frame that must decode to exactly ``size`` bytes.

    The frame's declared content size is checked against ``size`` before anything is
    allocated (zstd allocates what the frame header declares), and the output is bounded.
    """
    try:
        declared = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise DecodeError(f"{what} does not start with a zstd frame header: {exc}") from exc
    if declared != size:
        found = "no content size" if declared < 0 else f"{declared} bytes"
        raise DecodeError(f"{what} is a zstd frame declaring {found}, expected {size} bytes")
    if size == 0:
        return b""
    try:
        out = _decompressor().decompress(data, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise DecodeError(f"{what} does not decompress: {exc}") from exc
    if len(out) != size:
        raise DecodeError(f"{what} decompressed to {len(out)} bytes, expected {size}")
    return out


def _decompress(head: StreamHead, data: memoryview) -> memoryview | bytes:
    """The encoded bytes of a stream whose head :func:`_check_head` accepted."""
    if len(data) != head.stored_size:
        raise DecodeError(f"stream holds {len(data)} bytes, its head says {head.stored_size}")
    if head.codec == Codec.NONE:
        return data
    if head.codec == Codec.ZSTD:
        return _zstd(data, head.encoded_size, "zstd stream")
    raise DecodeError(f"unknown codec id {head.codec}")


def _decode_planes(head: StreamHead, data: memoryview, np_dtype: np.dtype) -> np.ndarray:
    """Decode a byte-shuffled stream stored plane by plane, unshuffling straight from the planes.

    The head has passed :func:`_check_head`: ``param0`` planes of ``count`` bytes each.
    """
    planes = head.param0
    step = head.count
    if len(data) < 4 * planes:
        raise DecodeError(f"plane sizes ({4 * planes} bytes) run past the end of a {len(data)}-byte stream")
    sizes = np.frombuffer(data[: 4 * planes], "<u4").astype(np.int64)
    if 4 * planes + int(sizes.sum()) != len(data):
        raise DecodeError(f"planes add up to {4 * planes + int(sizes.sum())} bytes, the stream holds {len(data)}")
    parts = []
    pos = 4 * planes
    for i, size in enumerate(sizes.tolist()):
        part = data[pos: pos + size]
        pos += size
        if size != step:  # a raw plane is stored at its full size; anything else is a zstd frame
            part = _zstd(part, step, f"zstd plane {i}")
        parts.append(part)
    out = empty(step, np_dtype)
    _codec.unshuffle_planes(parts, out.view(np.uint8))
    return out


def decode_stream(head: StreamHead, data: memoryview) -> np.ndarray:
    """Decompress and decode one stream into a numpy array of ``head.count`` elements.

    Every size in the head is checked against the others and against ``data`` before
    anything is allocated or decompressed; malformed input raises :class:`DecodeError`.
    """
    np_dtype = DTYPE_NUMPY.get(head.dtype)
    if np_dtype is None:
        raise DecodeError(f"unknown element type id {head.dtype}")
    _check_head(head, np_dtype)
    if len(data) != head.stored_size:
        raise DecodeError(f"stream holds {len(data)} bytes, its head says {head.stored_size}")
    if head.codec == Codec.ZSTD_PLANES:
        try:
            return _decode_planes(head, data, np_dtype)
        except DecodeError:
            raise
        except ValueError as exc:
            raise DecodeError(str(exc)) from exc
    raw = _decompress(head, data)
    n = head.count
    enc = head.encoding
    try:
        if enc == Encoding.PLAIN:
            return np.frombuffer(raw, dtype=np_dtype)
        if enc == Encoding.BYTE_SHUFFLE:
            out = empty(n, np_dtype)
            _codec.unshuffle_bytes(np.frombuffer(raw, np.uint8), np_dtype.itemsize, out.view(np.uint8))
            return out
        src = np.frombuffer(raw, np.uint8)
        if enc == Encoding.DICT:
            return _decode_dict(head, src, np_dtype)
        out = empty(n, np.int64)
        if enc == Encoding.FOR:
            _codec.for_decode(src, head.param0, int(head.param1), out)
        else:
            _codec.delta_varint_decode(src, out)
        return out
    except DecodeError:
        raise
    except ValueError as exc:
        raise DecodeError(str(exc)) from exc


def _decode_dict(head: StreamHead, src: np.ndarray, np_dtype: np.dtype) -> np.ndarray:
    k, bits, itemsize = head.param0, int(head.param1), np_dtype.itemsize
    if k < 1 or k * itemsize > len(src) or bits not in (1, 2, 4, 8, 16, 32):
        raise DecodeError(f"dictionary of {k} entries with {bits}-bit indices does not fit a {len(src)}-byte stream")
    int_dtype = np.dtype(f"<i{itemsize}")
    entries = np.empty(k, dtype=int_dtype)
    _codec.unshuffle_bytes(src[: k * itemsize], itemsize, entries.view(np.uint8))
    out = empty(head.count, int_dtype)
    _codec.dict_decode(entries, src[k * itemsize:], bits, out)
    return out.view(np_dtype)


def decode_offsets(head: StreamHead, data: memoryview, num_rows: int, num_values: int) -> np.ndarray:
    """Decode a lengths stream straight into int32 offsets (``num_rows + 1`` entries).

    Checks that there is one length per row, none negative and none above ``num_values``,
    summing to ``num_values`` (which an int32 offset must hold): the offsets then never
    decrease and never point past the values, so kernels may index with them unchecked.
    """
    if not 0 <= num_values < 2**31:
        raise DecodeError(f"values stream holds {num_values} values, more than an int32 offset can address")
    if not 0 <= num_rows < 2**31:
        raise DecodeError(f"lengths stream for {num_rows} rows, expected fewer than 2^31")
    if head.count != num_rows or head.dtype != DType.INT64:
        raise DecodeError(f"lengths stream holds {head.count} entries for {num_rows} rows")
    out = empty(num_rows + 1, np.int32)
    try:
        if head.encoding == Encoding.FOR and head.param0 == 0:
            _check_head(head, DTYPE_NUMPY[DType.INT64])
            raw = _decompress(head, data)
            total = _codec.lengths_to_offsets(np.frombuffer(raw, np.uint8), int(head.param1), out)
        else:
            lengths = decode_stream(head, data)
            total = 0
            if num_rows:
                lo, hi = _codec.minmax_int64(lengths)
                if lo < 0:
                    raise DecodeError(f"lengths stream holds a negative length ({lo})")
                if hi > num_values:
                    raise DecodeError(f"a row holds {hi} values, the values stream holds {num_values}")
                # Every length is at most num_values < 2^31 and there are fewer than 2^31 rows:
                # the int64 running sum cannot wrap, so a matching total bounds every offset.
                acc = np.cumsum(lengths)
                total = int(acc[-1])
                if total == num_values:
                    out[1:] = acc
            out[0] = 0
    except DecodeError:
        raise
    except ValueError as exc:
        raise DecodeError(str(exc)) from exc
    if total != num_values:
        raise DecodeError(f"lengths add up to {total}, but the values stream holds {num_values}")
    return out

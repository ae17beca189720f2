"""Stream encodings: which one to use for a stream (policy), and encode/decode by id.

A *stream* is one typed array of a chunk (a column's lengths, ids, weights, validity ...).
Each stream is encoded (plain, byte shuffle, delta+zigzag+varint, frame of reference,
dictionary), then compressed by a codec (zstd or none), and described by a fixed 48-byte
head (:data:`~samplestore.format.spec.STREAM_HEAD`). The encodings themselves are registered
by id in :mod:`samplestore.format.codecs` (one module each); this module decides which one a
stream gets, compresses, and checks a head's sizes before anything is decoded.
"""

from __future__ import annotations

import threading

import numpy as np
import zstandard

from . import _codec
from .codecs import DecodeError, Encoded, StreamHead, empty, get_encoding
from .spec import DTYPE_NUMPY, Codec, DType, Encoding

__all__ = ["StreamHead", "Hint", "encode_stream", "decode_stream", "decode_offsets", "Compressor", "empty",
           "DecodeError"]

# Below this many bytes a transform cannot pay for itself.
_MIN_TRANSFORM_BYTES = 64
# The cross-row encoding is tried on a whole stream only where the stream's first rows copy
# at least a quarter of their ids from earlier rows: on lists that barely overlap (short
# random id lists) it would cost an encode and a second compression of every chunk, to lose.
_CROSS_ROW_PROBE_ROWS = 2048


class Hint:
    """What a stream holds, which narrows the encodings worth trying."""

    LENGTHS = "lengths"  # small non-negative list lengths
    IDS = "ids"  # categorical ids: often few distinct values per chunk
    ORDERED = "ordered"  # near-monotone integers: timestamps, row ids
    INT = "int"  # any integer column
    FLOAT = "float"
    BYTES = "bytes"  # opaque bytes: string data, bitmaps


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


def _encode_int(values: np.ndarray, hint: str) -> Encoded:
    """Pick the smallest integer encoding among those the hint allows."""
    n = values.shape[0]
    lo, hi = _codec.minmax_int64(values)
    if hint == Hint.LENGTHS:
        lo = min(lo, 0)  # base 0: the reader prefix-sums narrow lengths straight into offsets
    w = _width(int(hi) - int(lo))
    best = get_encoding(Encoding.FOR).encode(values, base=lo, width=w) or get_encoding(Encoding.PLAIN).encode(values)
    best_size = n * w if w < 8 else n * 8
    if hint == Hint.LENGTHS:
        return best
    if hint in (Hint.IDS, Hint.INT) and n >= 64 and best_size > n:
        d = get_encoding(Encoding.DICT).encode(values, keys=values, beat=best_size)
        if d is not None:
            best, best_size = d, len(d.payload)
    if hint in (Hint.ORDERED, Hint.INT) and n >= 2:
        dv = get_encoding(Encoding.DELTA_VARINT).encode(values)
        if len(dv.payload) < best_size:
            best = dv
    return best


def _choose(values: np.ndarray, dtype: int, hint: str) -> Encoded:
    """The policy: which registered encoding a stream of this element type and hint gets."""
    if values.nbytes >= _MIN_TRANSFORM_BYTES:
        if dtype == DType.INT64:
            return _encode_int(values, hint)
        if dtype == DType.FLOAT32:
            # Counts, log-counts and labels take few distinct values: a dictionary wins there.
            d = get_encoding(Encoding.DICT).encode(values, keys=values.view(np.int32).astype(np.int64),
                                                   beat=values.nbytes * 3 // 4)
            return d if d is not None else get_encoding(Encoding.BYTE_SHUFFLE).encode(values)
        if dtype in (DType.FLOAT64, DType.FLOAT16, DType.BFLOAT16):
            return get_encoding(Encoding.BYTE_SHUFFLE).encode(values)
    return get_encoding(Encoding.PLAIN).encode(values)


def encode_stream(values: np.ndarray, dtype: int, hint: str, compressor: Compressor,
                  encoding: int | None = None, rows: np.ndarray | None = None) -> tuple[StreamHead, bytes | memoryview]:
    """Encode and compress one stream; return its head and stored bytes.

    ``encoding``: a registered encoding id to use instead of the policy's choice (a feature
    kind may pin one for a stream); it must accept the values.
    ``rows``: for a stream of list elements, the int64 lengths of the rows they belong to.
    The policy then also tries the cross-row encoding and keeps it only where the stored
    stream comes out smaller.
    """
    np_dtype = DTYPE_NUMPY[dtype]
    values = np.ascontiguousarray(values, dtype=np_dtype)
    n = values.shape[0]
    if encoding is not None:
        pinned = get_encoding(encoding).encode(values, rows=rows)
        if pinned is None:
            raise ValueError(f"encoding id {encoding} ({get_encoding(encoding).name}) does not take this "
                             f"stream of {n} {np_dtype} values")
        return _store(pinned, dtype, n, compressor)
    best = _store(_choose(values, dtype, hint), dtype, n, compressor)
    if rows is not None and dtype == DType.INT64 and values.nbytes >= _MIN_TRANSFORM_BYTES and _overlaps(values, rows):
        # Whether the copies beat a dictionary only zstd can say: both are stored and the
        # smaller kept.
        crossed = get_encoding(Encoding.CROSS_ROW).encode(values, rows=rows)
        if crossed is not None:
            alt = _store(crossed, dtype, n, compressor)
            if len(alt[1]) < len(best[1]):
                best = alt
    return best


def _overlaps(values: np.ndarray, rows: np.ndarray) -> bool:
    """Whether the first rows of a list stream copy at least a quarter of their ids from
    earlier rows (a probe of :data:`_CROSS_ROW_PROBE_ROWS` rows; the whole stream if shorter)."""
    if len(rows) <= _CROSS_ROW_PROBE_ROWS:
        return True
    head = np.asarray(rows[:_CROSS_ROW_PROBE_ROWS], dtype=np.int64)
    n = int(head.sum())
    probe = get_encoding(Encoding.CROSS_ROW).encode(values[:n], rows=head)
    return probe is not None and n - probe.param1 >= n // 4


def _store(chosen: Encoded, dtype: int, n: int, compressor: Compressor) -> tuple[StreamHead, bytes | memoryview]:
    """Compress an encoded stream of ``n`` values; return its head and stored bytes."""
    enc, payload, p0, p1 = chosen
    raw = memoryview(payload).cast("B") if isinstance(payload, np.ndarray) else memoryview(payload)  # type: ignore[arg-type]
    if get_encoding(enc).planes:
        codec, stored = compressor.compress_planes(payload, p0)  # type: ignore[arg-type]
    else:
        codec, stored = compressor.compress(raw)
    return StreamHead(enc, codec, dtype, n, len(raw), len(stored), p0, p1), stored


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
    n, esize = head.count, head.encoded_size
    encoding = get_encoding(head.encoding)  # UnknownEncoding (a DecodeError) names the id
    name = encoding.name
    want = encoding.encoded_size(head, np_dtype)
    if esize != want:
        raise DecodeError(f"{name} stream of {n} {np_dtype} values takes {want} bytes, its head says {esize}")
    stored = head.stored_size
    if head.codec == Codec.NONE:
        if stored != esize:
            raise DecodeError(f"uncompressed stream stores {stored} bytes, its head says {esize}")
    elif head.codec in (Codec.ZSTD, Codec.ZSTD_PLANES):
        if esize > ZSTD_MAX_EXPANSION * stored:
            raise DecodeError(f"zstd stream of {stored} bytes cannot decode to the {esize} bytes its head says")
        if head.codec == Codec.ZSTD_PLANES and not encoding.planes:
            raise DecodeError(f"plane-wise zstd on a {name} stream, which is not made of byte planes")
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
    try:
        return get_encoding(head.encoding).decode(head, raw, np_dtype)
    except DecodeError:
        raise
    except ValueError as exc:
        raise DecodeError(str(exc)) from exc


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
        encoding = get_encoding(head.encoding)
        if encoding.decodes_lengths(head):
            _check_head(head, DTYPE_NUMPY[DType.INT64])
            raw = _decompress(head, data)
            total = encoding.decode_lengths(head, raw, out)
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

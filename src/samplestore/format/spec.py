"""Constants, checksums and fixed binary structures of the .ssf format (see docs/FORMAT.md)."""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import Callable, Iterable

import numpy as np
import xxhash

__all__ = [
    "MAGIC",
    "VERSION_MAJOR",
    "VERSION_MINOR",
    "OLDEST_MAJOR",
    "CHECKSUMS",
    "checksum",
    "HEADER",
    "TRAILER",
    "FOOTER_HEAD",
    "CHUNK_HEAD",
    "STREAM_HEAD",
    "CHUNK_ENTRY",
    "STATS_ENTRY",
    "Encoding",
    "Codec",
    "DType",
    "DTYPE_NUMPY",
    "MAX_ROW_GROUP_ROWS",
    "name_hash",
]

MAGIC = b"SSF1"
VERSION_MAJOR = 2
VERSION_MINOR = 0
#: The oldest major version this reader still reads.
OLDEST_MAJOR = 1
#: Most rows a row group may hold: list offsets are int32, and a reader sizes what it
#: allocates from row counts, so a footer claiming more is refused.
MAX_ROW_GROUP_ROWS = 2**31 - 1


def _xxh3_32(data: bytes | memoryview) -> int:
    return xxhash.xxh3_64_intdigest(data) & 0xFFFFFFFF


#: Checksum of the footer and of every chunk, by major version: v1 used zlib's crc32; v2
#: uses the low 32 bits of XXH3-64 (seed 0), ~10x faster, which matters when a read is
#: mostly checksumming bytes that are already in the page cache.
CHECKSUMS: dict[int, Callable[[bytes | memoryview], int]] = {1: zlib.crc32, 2: _xxh3_32}


def checksum(parts: Iterable[bytes | memoryview]) -> int:
    """The current version's checksum of ``parts`` taken as one byte string."""
    h = xxhash.xxh3_64()
    for p in parts:
        h.update(p)
    return h.intdigest() & 0xFFFFFFFF

def name_hash(name: str) -> int:
    """The 64-bit hash under which a column name is indexed in the footer."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")


#: File header: magic, major version, minor version.
HEADER = struct.Struct("<4sHH")
#: Trailer: footer length, footer checksum, major, minor, reserved, magic.
TRAILER = struct.Struct("<QIHHI4s")
#: Footer head: columns, row groups, rows, configured row-group rows, descriptor blob
#: length, metadata length.
FOOTER_HEAD = struct.Struct("<IIQQQQ")
#: Chunk head: number of streams, reserved.
CHUNK_HEAD = struct.Struct("<HHI")
#: Stream head: encoding, codec, dtype, flags, reserved, count, encoded size, stored size,
#: param0, param1.
STREAM_HEAD = struct.Struct("<BBBBIQQQqq")

#: One chunk-table entry in the footer: offset, length, checksum of the chunk bytes,
#: reserved (the field keeps its v1 name, ``crc``).
CHUNK_ENTRY = np.dtype([("offset", "<u8"), ("length", "<u8"), ("crc", "<u4"), ("reserved", "<u4")])
#: One chunk-statistics entry in the footer: null count, value count, min and max (8 raw
#: bytes, int64 or float64 by flags), flags (bit 0 has min/max, bit 1 min/max are float64).
STATS_ENTRY = np.dtype(
    [("nulls", "<u8"), ("values", "<u8"), ("min", "<i8"), ("max", "<i8"), ("flags", "<u4"), ("reserved", "<u4")]
)
STATS_HAS_MINMAX = 1
STATS_FLOAT = 2


class Encoding:
    """Ids of the built-in encodings, as stream heads record them.

    Encodings are pluggable by id: each registers its encoder and decoder in
    :mod:`samplestore.format.codecs` (names: ``registered_encodings()``); a reader rejects
    ids that no registered encoding has.
    """

    PLAIN = 0
    BYTE_SHUFFLE = 1
    DELTA_VARINT = 2
    FOR = 3  # frame of reference: value - base in 1, 2 or 4 bytes
    DICT = 4  # frequency-ordered dictionary + narrow indices
    CROSS_ROW = 5  # each row's list as a slice of an earlier row of the chunk + new ids


class Codec:
    """Codec ids applied after the encoding."""

    NONE = 0
    ZSTD = 1
    # Byte planes of a byte-shuffled stream compressed one by one: u32 stored size per plane,
    # then the planes, each a zstd frame or (where zstd does not pay) the raw plane.
    ZSTD_PLANES = 2

    NAMES = {0: "none", 1: "zstd", 2: "zstd_planes"}


class DType:
    """Element type of a decoded stream."""

    INT64 = 1
    INT32 = 2
    FLOAT32 = 3
    FLOAT16 = 4
    BFLOAT16 = 5  # stored as the upper 16 bits of a float32
    FLOAT64 = 6
    UINT8 = 7


DTYPE_NUMPY: dict[int, np.dtype] = {
    DType.INT64: np.dtype("<i8"),
    DType.INT32: np.dtype("<i4"),
    DType.FLOAT32: np.dtype("<f4"),
    DType.FLOAT16: np.dtype("<f2"),
    DType.BFLOAT16: np.dtype("<u2"),
    DType.FLOAT64: np.dtype("<f8"),
    DType.UINT8: np.dtype("u1"),
}

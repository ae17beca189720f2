"""Take .ssf files apart and put them back together, for tests that craft damaged files.

The parser here uses only the format's structs (``samplestore.format.spec``), not the
reader, so a test can build files the reader has never seen: :func:`parse` maps every
integer field, stream and region of a file to its byte offset; :func:`fix_checksums`
recomputes the chunk and footer checksums after a mutation so that the mutation reaches
the decoders instead of being stopped by a checksum; :func:`assemble` lays out a whole
file from chunks and descriptors (offsets, chunk table, checksums, trailer).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np

from samplestore.format.spec import (
    CHECKSUMS, CHUNK_ENTRY, CHUNK_HEAD, FOOTER_HEAD, HEADER, MAGIC, STATS_ENTRY, STREAM_HEAD, TRAILER, Codec,
)
from samplestore.format.writer import name_hash

__all__ = ["IntField", "Stream", "Chunk", "Layout", "parse", "fix_checksums", "assemble", "stream",
           "pack_chunk", "zstd_frame_header", "with_chunks"]

# Field layout of a stream head: (name, offset, size, signed).
_STREAM_FIELDS = [("encoding", 0, 1, False), ("codec", 1, 1, False), ("dtype", 2, 1, False), ("flags", 3, 1, False),
                  ("reserved", 4, 4, False), ("count", 8, 8, False), ("encoded_size", 16, 8, False),
                  ("stored_size", 24, 8, False), ("param0", 32, 8, True), ("param1", 40, 8, True)]


@dataclass(frozen=True)
class IntField:
    """A little-endian integer field of a file: where it is, how wide, and what it holds."""

    name: str
    at: int
    size: int
    signed: bool = False
    checksum: bool = False  # a checksum field (fix_checksums overwrites it)

    def read(self, blob: bytes | bytearray) -> int:
        return int.from_bytes(blob[self.at:self.at + self.size], "little", signed=self.signed)

    def write(self, buf: bytearray, value: int) -> None:
        """Store ``value`` wrapped to the field's width (two's complement)."""
        buf[self.at:self.at + self.size] = (value % (1 << (8 * self.size))).to_bytes(self.size, "little")


@dataclass
class Stream:
    """One stream of a chunk: its head (decoded) and where its head and stored bytes lie."""

    role: int  # index within the chunk
    head_at: int
    data_at: int
    encoding: int
    codec: int
    dtype: int
    count: int
    encoded_size: int
    stored_size: int
    param0: int
    param1: int


@dataclass
class Chunk:
    """One chunk: its chunk-table entry and its streams."""

    ordinal: int
    name: str
    row_group: int
    entry_at: int
    offset: int
    length: int
    streams: list[Stream] = field(default_factory=list)


@dataclass
class Layout:
    """Where everything of an intact .ssf file lies."""

    blob: bytes
    major: int
    footer_at: int
    footer_len: int
    num_columns: int
    num_row_groups: int
    num_rows: int
    row_group_rows: int
    rg_rows: list[int]
    sections: dict[str, tuple[int, int]]  # name -> (absolute start, end)
    descriptors: list[bytes]
    names: list[str]
    chunks: list[Chunk]  # ordinal-major, as in the chunk table
    metadata: bytes

    def chunk(self, name: str, row_group: int) -> Chunk:
        o = self.names.index(name)
        return self.chunks[o * self.num_row_groups + row_group]

    def int_fields(self) -> list[IntField]:
        """Every integer field of the header, trailer, footer and chunk/stream heads."""
        t = len(self.blob) - TRAILER.size
        f = self.footer_at
        out = [IntField("header.major", 4, 2), IntField("header.minor", 6, 2),
               IntField("trailer.footer_length", t, 8), IntField("trailer.checksum", t + 8, 4, checksum=True),
               IntField("trailer.major", t + 12, 2), IntField("trailer.minor", t + 14, 2),
               IntField("trailer.reserved", t + 16, 4)]
        for name, at, size in [("columns", 0, 4), ("row_groups", 4, 4), ("rows", 8, 8), ("row_group_rows", 16, 8),
                               ("descriptor_length", 24, 8), ("metadata_length", 32, 8)]:
            out.append(IntField(f"footer.{name}", f + at, size))
        c, r = self.num_columns, self.num_row_groups
        s = self.sections
        out += [IntField(f"rg_rows[{i}]", s["rg_rows"][0] + 8 * i, 8) for i in range(r)]
        out += [IntField(f"name_hash[{i}]", s["hashes"][0] + 8 * i, 8) for i in range(c)]
        out += [IntField(f"name_order[{i}]", s["order"][0] + 4 * i, 4) for i in range(c)]
        out += [IntField(f"descriptor_offset[{i}]", s["desc_offsets"][0] + 8 * i, 8) for i in range(c + 1)]
        for ch in self.chunks:
            where = f"{ch.name}@{ch.row_group}"
            out += [IntField(f"chunk_entry[{where}].offset", ch.entry_at, 8),
                    IntField(f"chunk_entry[{where}].length", ch.entry_at + 8, 8),
                    IntField(f"chunk_entry[{where}].checksum", ch.entry_at + 16, 4, checksum=True)]
            i = (ch.entry_at - s["chunks"][0]) // CHUNK_ENTRY.itemsize
            st = s["stats"][0] + STATS_ENTRY.itemsize * i
            out += [IntField(f"stats[{where}].{n}", st + at, sz, n in ("min", "max"))
                    for n, at, sz in [("nulls", 0, 8), ("values", 8, 8), ("min", 16, 8), ("max", 24, 8), ("flags", 32, 4)]]
            out.append(IntField(f"chunk[{where}].streams", ch.offset, 2))
            out.append(IntField(f"chunk[{where}].reserved", ch.offset + 2, 2))
            for sm in ch.streams:
                out += [IntField(f"stream[{where}#{sm.role}].{n}", sm.head_at + at, size, signed)
                        for n, at, size, signed in _STREAM_FIELDS]
        return out

    def streams(self) -> list[tuple[Chunk, Stream]]:
        return [(ch, sm) for ch in self.chunks for sm in ch.streams]


def parse(blob: bytes) -> Layout:
    """Map an intact file's structures to byte offsets (raises ValueError on a damaged file)."""
    magic, major, _ = HEADER.unpack_from(blob, 0)
    flen, _crc, _tmaj, _tmin, _res, tmagic = TRAILER.unpack_from(blob, len(blob) - TRAILER.size)
    if magic != MAGIC or tmagic != MAGIC:
        raise ValueError("not an .ssf file")
    f = len(blob) - TRAILER.size - flen
    c, r, rows, rg_rows, dlen, mlen = FOOTER_HEAD.unpack_from(blob, f)
    sizes = [("head", FOOTER_HEAD.size), ("rg_rows", 8 * r), ("hashes", 8 * c), ("order", 4 * c + (4 if c % 2 else 0)),
             ("desc_offsets", 8 * (c + 1)), ("chunks", CHUNK_ENTRY.itemsize * c * r),
             ("stats", STATS_ENTRY.itemsize * c * r), ("descriptors", dlen), ("metadata", mlen)]
    sections, pos = {}, f
    for name, size in sizes:
        sections[name] = (pos, pos + size)
        pos += size
    if pos != len(blob) - TRAILER.size:
        raise ValueError("footer sections do not add up")
    rgs = np.frombuffer(blob, "<u8", r, sections["rg_rows"][0]).tolist()
    doffs = np.frombuffer(blob, "<u8", c + 1, sections["desc_offsets"][0]).tolist()
    d0 = sections["descriptors"][0]
    descriptors = [bytes(blob[d0 + doffs[i]: d0 + doffs[i + 1]]) for i in range(c)]
    names = [json.loads(d)["name"] for d in descriptors]
    table = np.frombuffer(blob, CHUNK_ENTRY, c * r, sections["chunks"][0])
    chunks = []
    for i, e in enumerate(table):
        o, rg = divmod(i, r) if r else (i, 0)
        off, length = int(e["offset"]), int(e["length"])
        ch = Chunk(o, names[o], rg, sections["chunks"][0] + CHUNK_ENTRY.itemsize * i, off, length)
        n = CHUNK_HEAD.unpack_from(blob, off)[0]
        head = off + CHUNK_HEAD.size
        data = head + n * STREAM_HEAD.size
        for k in range(n):
            enc, codec, dt, _fl, _rs, count, esize, ssize, p0, p1 = STREAM_HEAD.unpack_from(blob, head + k * STREAM_HEAD.size)
            ch.streams.append(Stream(k, head + k * STREAM_HEAD.size, data, enc, codec, dt, count, esize, ssize, p0, p1))
            data += ssize
        chunks.append(ch)
    m0, m1 = sections["metadata"]
    return Layout(bytes(blob), major, f, flen, c, r, rows, rg_rows, rgs, sections, descriptors, names, chunks,
                  bytes(blob[m0:m1]))


def fix_checksums(buf: bytearray) -> bytearray:
    """Recompute every chunk checksum and the footer checksum of ``buf`` in place.

    Best effort on a damaged file: a checksum is rewritten wherever the structures that
    locate it still make sense (a chunk entry whose range lies in the file, a footer whose
    length fits), so that whatever was mutated is what the reader meets.
    """
    n = len(buf)
    if n < HEADER.size + TRAILER.size:
        return buf
    major = int.from_bytes(buf[4:6], "little")
    ck = CHECKSUMS.get(major, CHECKSUMS[max(CHECKSUMS)])
    t = n - TRAILER.size
    flen = int.from_bytes(buf[t:t + 8], "little")
    f = t - flen
    if flen < FOOTER_HEAD.size or f < HEADER.size:
        return buf
    c, r = struct.unpack_from("<II", buf, f)
    pad = 4 if c % 2 else 0
    table_at = f + FOOTER_HEAD.size + 8 * r + 8 * c + 4 * c + pad + 8 * (c + 1)
    entries = c * r
    if entries and table_at + CHUNK_ENTRY.itemsize * entries <= t:
        view = memoryview(buf)
        for i in range(entries):
            e = table_at + CHUNK_ENTRY.itemsize * i
            off, length = struct.unpack_from("<QQ", buf, e)
            if 0 <= off and off + length <= n:
                struct.pack_into("<I", buf, e + 16, ck(view[off:off + length]))
        view.release()
    struct.pack_into("<I", buf, t + 8, ck(bytes(buf[f:t])))
    return buf


def stream(payload: bytes | np.ndarray, dtype: int, count: int, *, encoding: int = 0, codec: int = Codec.NONE,
           encoded_size: int | None = None, param0: int = 0, param1: int = 0) -> tuple[bytes, bytes]:
    """(48-byte head, stored bytes) of one stream; sizes default to the payload's."""
    data = payload.tobytes() if isinstance(payload, np.ndarray) else bytes(payload)
    esize = len(data) if encoded_size is None else encoded_size
    return STREAM_HEAD.pack(encoding, codec, dtype, 0, 0, count, esize, len(data), param0, param1), data


def pack_chunk(streams: list[tuple[bytes, bytes]]) -> bytes:
    """A chunk from (head, stored bytes) pairs: chunk head, every stream head, every payload."""
    return b"".join([CHUNK_HEAD.pack(len(streams), 0, 0), *(h for h, _ in streams), *(d for _, d in streams)])


def assemble(chunks: list[list[bytes]], descriptors: list[bytes], rg_rows: list[int], *, major: int = 2,
             row_group_rows: int | None = None, metadata: bytes | None = None, stats: bytes | None = None) -> bytes:
    """A whole file: ``chunks[ordinal][row_group]`` laid out in order, with a footer to match.

    Name hashes come from each descriptor's ``name`` (or the raw bytes where the descriptor
    does not parse, so a deliberately broken descriptor still gets an index entry).
    """
    c, r = len(descriptors), len(rg_rows)
    ck = CHECKSUMS[major]
    body = bytearray(HEADER.pack(MAGIC, major, 0))
    table = np.zeros((c, r), CHUNK_ENTRY)
    for rg in range(r):
        for o in range(c):
            data = chunks[o][rg]
            table[o, rg] = (len(body), len(data), ck(data), 0)
            body += data
    hashes = []
    for d in descriptors:
        try:
            name = json.loads(d)["name"]
        except (ValueError, TypeError, KeyError, RecursionError):
            name = None
        hashes.append(name_hash(name) if isinstance(name, str) else int.from_bytes(d[:8].ljust(8, b"\0"), "little"))
    hashes = np.array(hashes, "<u8")
    order = np.argsort(hashes, kind="stable").astype("<u4")
    doffs = np.zeros(c + 1, "<u8")
    np.cumsum([len(d) for d in descriptors], out=doffs[1:])
    blob = b"".join(descriptors)
    meta = metadata if metadata is not None else json.dumps(
        {"created_by": "ssf_layout", "row_group_rows": row_group_rows or max(rg_rows, default=1), "user": {}}).encode()
    footer = b"".join([
        FOOTER_HEAD.pack(c, r, sum(rg_rows), row_group_rows or max(rg_rows, default=1), len(blob), len(meta)),
        np.asarray(rg_rows, "<u8").tobytes(), hashes[order].tobytes(), order.tobytes(), b"\0" * (4 if c % 2 else 0),
        doffs.tobytes(), table.tobytes(),
        stats if stats is not None else np.zeros(c * r, STATS_ENTRY).tobytes(),
        blob, meta,
    ])
    body += footer
    body += TRAILER.pack(len(footer), ck(footer), major, 0, 0, MAGIC)
    return bytes(body)


def with_chunks(blob: bytes, replace: dict[tuple[str, int], bytes] | None = None,
                descriptors: dict[str, bytes] | None = None) -> bytes:
    """``blob`` re-laid with some chunks (by column name and row group) and descriptors replaced."""
    lay = parse(blob)
    replace = replace or {}
    descriptors = descriptors or {}
    chunks = [[replace.get((lay.names[o], rg), blob[ch.offset:ch.offset + ch.length])
               for rg, ch in enumerate(lay.chunks[o * lay.num_row_groups:(o + 1) * lay.num_row_groups])]
              for o in range(lay.num_columns)]
    descs = [descriptors.get(lay.names[o], lay.descriptors[o]) for o in range(lay.num_columns)]
    s0, s1 = lay.sections["stats"]
    return assemble(chunks, descs, lay.rg_rows, major=lay.major, row_group_rows=lay.row_group_rows,
                    metadata=lay.metadata, stats=blob[s0:s1])


def zstd_frame_header(data: bytes, at: int = 0) -> dict[str, int] | None:
    """Fields of the zstd frame header starting at ``data[at]``: where the frame-content-size
    field lies and how wide it is (None where ``data`` does not start a zstd frame)."""
    if data[at:at + 4] != b"\x28\xb5\x2f\xfd" or len(data) < at + 6:
        return None
    fhd = data[at + 4]
    fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    pos = at + 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    return {"descriptor_at": at + 4, "fcs_at": pos, "fcs_size": fcs_size, "header_end": pos + fcs_size}

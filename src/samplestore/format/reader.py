"""Read .ssf files: metadata, any columns of any row groups, into Arrow or raw numpy buffers.

Files are read through a :class:`~samplestore.storage.Storage` (``pread`` on a local disk,
ranged requests on an object store), and reads are built for latency: opening a file reads
its tail speculatively (:func:`tail_bytes`: 64 KiB, or 1/256 of a large file, which holds
trailer, footer and index in one request; a second request only when the footer is larger)
and checks the footer's checksum; the chunks a reader needs from one row group are fetched
in as few ranged requests as their gaps allow (:attr:`Storage.coalesce_gap
<samplestore.storage.Storage.coalesce_gap>`; :meth:`FileReader.fetch`). The footer's sections are fixed-size arrays
viewed with ``numpy.frombuffer``, and a column is found by binary search over sorted name
hashes, so reading k of N columns costs O(k) Python work. Every chunk is checked against its checksum before it is decoded, and every
size is checked against what the footer and the schema imply: damage raises
:class:`~samplestore.errors.CorruptFileError` naming the file, row group and column.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa

from ..errors import CorruptFileError, FormatVersionError, SchemaError
from ..schema import Feature, Schema, feature_from_dict
from ..storage import LocalStorage, Storage
from .columns import ColumnData, decode_column, stream_specs, to_arrow
from .encodings import DecodeError, StreamHead, empty
from .kinds import ChunkStreams
from .spec import (
    CHECKSUMS, CHUNK_ENTRY, CHUNK_HEAD, FOOTER_HEAD, HEADER, MAGIC, OLDEST_MAJOR, STATS_ENTRY,
    MAX_ROW_GROUP_ROWS, STATS_FLOAT, STATS_HAS_MINMAX, STREAM_HEAD, TRAILER, VERSION_MAJOR, name_hash,
)

__all__ = ["FileReader", "RowGroupBytes", "read_file", "ColumnData", "tail_bytes", "footer_bytes_estimate"]

#: The smallest speculative tail read: the footer of a file of a few hundred columns fits.
TAIL_BYTES = 64 << 10
#: The largest speculative tail read (a footer grows with columns x row groups, so with size).
MAX_TAIL_BYTES = 4 << 20
#: The largest footer hint followed (a hint is a guess; a larger footer costs a second request).
MAX_HINT_BYTES = 64 << 20
#: The largest single ranged request coalescing makes (bounds the memory of one request).
MAX_COALESCED_BYTES = 64 << 20


def tail_bytes(file_size: int) -> int:
    """How much of a file's end opening it reads in one request: ``TAIL_BYTES``, or 1/256 of
    the file up to ``MAX_TAIL_BYTES`` (a wide file's footer grows with it; reading 0.4% more
    costs no extra round trip), never more than the file."""
    return min(file_size, max(TAIL_BYTES, min(file_size >> 8, MAX_TAIL_BYTES)))


def footer_bytes_estimate(num_columns: int, num_row_groups: int) -> int:
    """About how many bytes the footer of a file with these dimensions takes (the index is
    exact, column descriptors are guessed at 64 bytes each): a catalog that knows a file's
    columns and row groups passes it as ``FileReader(footer_hint=)``, so that opening a
    very wide file still costs one request."""
    c, r = max(0, num_columns), max(0, num_row_groups)
    return (FOOTER_HEAD.size + 8 * r + c * (8 + 4 + 64) + 8 * (c + 2)
            + c * r * (CHUNK_ENTRY.itemsize + STATS_ENTRY.itemsize) + 1024)


class RowGroupBytes:
    """The stored chunks of some columns of one row group, fetched and checksummed, ready to
    decode (:meth:`FileReader.fetch`): what a prefetch keeps in flight, in compressed bytes."""

    __slots__ = ("row_group", "chunks", "nbytes")

    def __init__(self, row_group: int, chunks: dict[int, memoryview], nbytes: int) -> None:
        self.row_group = row_group
        self.chunks = chunks  # column ordinal -> its chunk's bytes
        self.nbytes = nbytes  # bytes fetched (gaps included)


class FileReader:
    """An open .ssf file.

    Args:
        path: the file to open (in ``storage``'s namespace).
        storage: where the file lives; the local file system by default.
        footer_hint: on a remote storage, the footer size expected
            (:func:`footer_bytes_estimate`): the speculative tail read covers it.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        CorruptFileError: the file is too short, not an .ssf file, or its footer is damaged.
        FormatVersionError: the file was written by a newer major format version.
    """

    _file = None
    _tail: bytes = b""  # the file's last bytes, read on opening (at most TAIL_BYTES are kept)
    _tail_start = 0

    def __init__(self, path: str | os.PathLike[str], storage: Storage | None = None, *,
                 footer_hint: int | None = None) -> None:
        self.path = os.fspath(path)
        storage = storage or LocalStorage()
        self._footer_hint = min(int(footer_hint), MAX_HINT_BYTES) if footer_hint and storage.remote else 0
        self._gap = max(0, int(storage.coalesce_gap))
        overread = getattr(storage, "coalesce_overread", None)
        self._overread = None if overread is None else max(0.0, float(overread))
        self._remote = bool(storage.remote)
        self._header_checked = False
        self._file = storage.open_read(self.path)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- opening ----------------------------------------------------------------------------
    def _corrupt(self, msg: str, row_group: int | None = None, column: str | None = None) -> CorruptFileError:
        return CorruptFileError(msg, path=self.path, row_group=row_group, column=column)

    def _pread(self, offset: int, size: int) -> bytes:
        data = self._file.read_at(offset, size)
        if len(data) != size:
            raise self._corrupt(f"expected {size} bytes at offset {offset}, found {len(data)} (file truncated?)")
        return data

    def _pread_into(self, offset: int, size: int) -> memoryview:
        # Into Arrow's pool (see encodings.empty): plain streams are returned as views of it.
        buf = empty(size, np.uint8)
        # What the tail read on opening holds already is not fetched again.
        head = min(size, max(0, self._tail_start - offset)) if self._tail else size
        if head < size:
            start = offset + head - self._tail_start
            if start + size - head > len(self._tail):
                raise self._corrupt(f"expected {size} bytes at offset {offset}, the file has "
                                    f"{self._tail_start + len(self._tail)}")
            buf[head:] = np.frombuffer(self._tail, np.uint8, size - head, start)
            if not head:
                return memoryview(buf)
        got = self._file.read_into(offset, buf[:head] if head < size else buf)
        if got != head:
            raise self._corrupt(f"expected {size} bytes at offset {offset}, found {got} (file truncated?)")
        return memoryview(buf)

    def _open(self) -> None:
        size = self._file.size
        self.file_bytes = size
        min_size = HEADER.size + TRAILER.size + FOOTER_HEAD.size
        if size < min_size:
            raise self._corrupt(f"file is {size} bytes, shorter than the smallest .ssf file ({min_size} bytes)")
        # One request for trailer, footer and index (and the header, in a small file).
        tail_len = min(size, max(tail_bytes(size), self._footer_hint + TRAILER.size))
        tail = self._pread(size - tail_len, tail_len)
        if tail_len == size:
            self._check_header(tail[:HEADER.size])
        elif not self._remote:
            self._check_header(self._pread(0, HEADER.size))  # a local pread costs no round trip
        # else: the header is checked with the first chunk fetch reaching it, or by verify()
        flen, fcrc, tmajor, _tminor, _res, tmagic = TRAILER.unpack(tail[-TRAILER.size:])
        if tmagic != MAGIC:
            raise self._corrupt(f"trailer magic is {tmagic!r}, expected {MAGIC!r} (file truncated or not an .ssf file)")
        if not self._header_checked:
            self._check_version(tmajor)
        major = self.format_version
        if tmajor != major:
            raise self._corrupt(f"header says format version {major}, trailer says {tmajor}")
        data_end = size - TRAILER.size - flen
        if flen < FOOTER_HEAD.size or data_end < HEADER.size:
            raise self._corrupt(f"footer length {flen} does not fit a {size}-byte file")
        have = tail_len - TRAILER.size  # footer bytes the tail read holds already
        if flen <= have:
            footer = tail[have - flen: have]
        else:  # a footer larger than the speculative read: one more request for its front
            footer = self._pread(data_end, flen - have) + tail[:have]
        if self._checksum(footer) != fcrc:
            raise self._corrupt("footer checksum mismatch (file damaged)")
        if tail_len <= TAIL_BYTES:  # kept: chunks near the end (all of a small file) come from memory
            self._tail, self._tail_start = tail, size - tail_len
        c, r, rows, rg_rows, desc_len, meta_len = FOOTER_HEAD.unpack_from(footer, 0)
        pad = 4 if c % 2 else 0
        sizes = [FOOTER_HEAD.size, 8 * r, 8 * c, 4 * c + pad, 8 * (c + 1),
                 CHUNK_ENTRY.itemsize * c * r, STATS_ENTRY.itemsize * c * r, desc_len, meta_len]
        if sum(sizes) != flen:
            raise self._corrupt(f"footer sections add up to {sum(sizes)} bytes, footer is {flen}")
        offs = np.cumsum([0, *sizes])
        self.num_columns, self.num_row_groups, self.num_rows = c, r, rows
        self.row_group_size = rg_rows
        self._data_end = data_end
        rg_rows_u8 = np.frombuffer(footer, "<u8", r, int(offs[1]))
        if r and (rg_rows_u8.min() < 1 or rg_rows_u8.max() > min(rg_rows, MAX_ROW_GROUP_ROWS)):
            raise self._corrupt(f"row groups hold {int(rg_rows_u8.min())} to {int(rg_rows_u8.max())} rows, expected "
                                f"1 to the configured {rg_rows} (at most {MAX_ROW_GROUP_ROWS})")
        self.row_group_rows = rg_rows_u8.astype(np.int64)
        self._hashes = np.frombuffer(footer, "<u8", c, int(offs[2]))
        self._order = np.frombuffer(footer, "<u4", c, int(offs[3]))
        self._desc_offsets = np.frombuffer(footer, "<u8", c + 1, int(offs[4])).astype(np.int64)
        self._chunks = np.frombuffer(footer, CHUNK_ENTRY, c * r, int(offs[5]))
        self._stats = np.frombuffer(footer, STATS_ENTRY, c * r, int(offs[6]))
        self._desc_blob = footer[int(offs[7]): int(offs[8])]
        self._meta_blob = footer[int(offs[8]): int(offs[9])]
        self._check_index(rows, desc_len)
        self.row_group_starts = np.concatenate([[0], np.cumsum(self.row_group_rows)]).astype(np.int64)
        self._features: dict[int, Feature] = {}
        self._ordinals_seen: dict[str, int] = {}
        self._names_parsed: dict[str, int] = {}
        self._arrow_schemas: dict[tuple[int, ...], pa.Schema] = {}

    def _check_header(self, head: bytes | memoryview) -> None:
        magic, major, _minor = HEADER.unpack(head[:HEADER.size])
        if magic != MAGIC:
            raise self._corrupt(f"not an .ssf file: starts with {bytes(magic)!r}, expected {MAGIC!r}")
        if self._header_checked:
            if major != self.format_version:
                raise self._corrupt(f"header says format version {major}, trailer says {self.format_version}")
            return
        self._check_version(major)
        self._header_checked = True

    def _check_version(self, major: int) -> None:
        if major > VERSION_MAJOR:
            raise FormatVersionError(
                f"file uses .ssf format version {major}; this samplestore reads up to {VERSION_MAJOR} "
                "(upgrade samplestore)", path=self.path)
        if major < OLDEST_MAJOR:
            raise self._corrupt(f"header says format version {major}; versions start at {OLDEST_MAJOR}")
        self.format_version = major
        self._checksum = CHECKSUMS[major]

    def _check_index(self, rows: int, desc_len: int) -> None:
        """Check the footer's index sections against each other (vectorised: O(C + R))."""
        c = self.num_columns
        total = int(self.row_group_rows.sum())  # each is below 2^31: the sum cannot wrap
        if total != rows:
            raise self._corrupt(f"row groups add up to {total} rows, footer says {rows}")
        if c and (self._desc_offsets[0] != 0 or self._desc_offsets[-1] != desc_len or np.any(np.diff(self._desc_offsets) <= 0)):
            raise self._corrupt("column descriptor offsets are inconsistent: expected them to rise from 0 to "
                                f"the blob length {desc_len}")
        if c and np.any(self._hashes[1:] < self._hashes[:-1]):
            raise self._corrupt("column name hashes are not sorted")
        if c and (int(self._order.max()) >= c or np.any(np.bincount(self._order, minlength=c) != 1)):
            raise self._corrupt(f"column name order is not a permutation of the {c} column ordinals")
        # Position of each ordinal's entry in the hash index: a parsed descriptor's name must
        # hash to it (a damaged index would otherwise hide a column or show it under another name).
        self._index_of = np.empty(c, np.int64)
        self._index_of[self._order] = np.arange(c)

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "FileReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, AttributeError):
            pass

    # -- metadata ---------------------------------------------------------------------------
    def _feature(self, ordinal: int) -> Feature:
        f = self._features.get(ordinal)
        if f is None:
            f = self._parse_feature(ordinal)
            self._features[ordinal] = f
        return f

    def _parse_feature(self, ordinal: int) -> Feature:
        a, b = int(self._desc_offsets[ordinal]), int(self._desc_offsets[ordinal + 1])
        where = f"column descriptor {ordinal} of {self.num_columns}"
        try:
            d = json.loads(self._desc_blob[a:b])
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
            raise self._corrupt(f"{where} is not valid JSON: {exc}") from exc
        name = d.get("name") if isinstance(d, dict) and isinstance(d.get("name"), str) else None
        try:
            f = feature_from_dict(d)
        except (SchemaError, ValueError) as exc:
            raise self._corrupt(f"{where} does not describe a feature: {exc}", column=name) from exc
        h = name_hash(f.name)
        found = int(self._hashes[self._index_of[ordinal]])
        if found != h:
            raise self._corrupt(f"column descriptor {ordinal} names {f.name!r}, whose hash is {h:#018x}; "
                                f"the name index holds {found:#018x} for it", column=f.name)
        other = self._names_parsed.setdefault(f.name, ordinal)
        if other != ordinal:
            raise self._corrupt(f"column descriptors {other} and {ordinal} both name {f.name!r}", column=f.name)
        return f

    def _ordinal(self, name: str) -> int:
        o = self._ordinals_seen.get(name)
        if o is not None:
            return o
        o = self._find_ordinal(name)
        self._ordinals_seen[name] = o  # the training path asks for the same columns per row group
        return o

    def _find_ordinal(self, name: str) -> int:
        h = name_hash(name)
        i = int(np.searchsorted(self._hashes, np.uint64(h)))
        while i < self.num_columns and int(self._hashes[i]) == h:
            o = int(self._order[i])
            if o < self.num_columns and self._feature(o).name == name:
                return o
            i += 1
        names = self.column_names
        shown = names if len(names) <= 20 else names[:20] + [f"... {len(names) - 20} more"]
        raise SchemaError(f"no column {name!r} in {self.path!r}; columns: {shown}")

    @property
    def column_names(self) -> list[str]:
        """All column names in file order (parses every descriptor: O(N))."""
        return [self._feature(i).name for i in range(self.num_columns)]

    @property
    def schema(self) -> Schema:
        """The schema of every column in the file (O(N))."""
        return Schema(self._feature(i) for i in range(self.num_columns))

    def schema_for(self, columns: Iterable[str]) -> Schema:
        """The schema of just these columns (O(k))."""
        return Schema(self._feature(self._ordinal(n)) for n in columns)

    def has_column(self, name: str) -> bool:
        """Whether the file holds a column called ``name``."""
        try:
            self._ordinal(name)
        except SchemaError:
            return False
        return True

    @property
    def metadata(self) -> dict[str, Any]:
        """The footer's JSON metadata (writer version, row-group size, user key/values)."""
        try:
            return json.loads(self._meta_blob)
        except (ValueError, RecursionError) as exc:
            raise self._corrupt(f"footer metadata does not parse: {exc}") from exc

    def chunk_stats(self, name: str) -> np.ndarray:
        """Per-row-group statistics of one column: records with nulls, values, min, max, flags.

        ``min``/``max`` are int64, or float64 where ``flags & 2``; valid where ``flags & 1``.
        """
        o = self._ordinal(name)
        return self._stats[o * self.num_row_groups: (o + 1) * self.num_row_groups]

    def minmax(self, name: str, row_group: int) -> tuple[Any, Any] | None:
        """(min, max) of a column in a row group, or None where not recorded."""
        s = self.chunk_stats(name)[row_group]
        if not s["flags"] & STATS_HAS_MINMAX:
            return None
        if s["flags"] & STATS_FLOAT:
            return (float(np.int64(s["min"]).view(np.float64)), float(np.int64(s["max"]).view(np.float64)))
        return int(s["min"]), int(s["max"])

    # -- data -------------------------------------------------------------------------------
    def _check_rg(self, rg: int) -> int:
        if not 0 <= rg < self.num_row_groups:
            raise IndexError(f"row group {rg} out of range: {self.path!r} has {self.num_row_groups}")
        return int(rg)

    def read_chunk(self, name: str, row_group: int) -> ColumnData:
        """Decode one column of one row group into raw numpy buffers."""
        return self._read_chunk(self._ordinal(name), self._check_rg(row_group))

    def _read_chunk(self, o: int, rg: int, fetched: RowGroupBytes | None = None) -> ColumnData:
        feat = self._feature(o)
        n = int(self.row_group_rows[rg])
        buf = fetched.chunks.get(o) if fetched is not None and fetched.row_group == rg else None
        if buf is None:
            buf = self._fetch_ordinals(rg, [o]).chunks[o]
        try:
            return self._decode_chunk(feat, buf, n)
        except DecodeError as exc:
            raise self._corrupt(f"chunk does not decode: {exc}", rg, feat.name) from exc

    def chunk_bytes(self, columns: Sequence[str], row_groups: Sequence[int] | None = None) -> int:
        """Stored bytes of the chunks of ``columns`` (those the file has) in ``row_groups``
        (all if None): what a projected read must fetch at the least."""
        rgs = np.arange(self.num_row_groups) if row_groups is None else np.asarray(
            [self._check_rg(r) for r in row_groups], np.int64)
        total = 0
        for c in columns:
            if self.has_column(c):
                total += int(self._chunks["length"][self._ordinal(c) * self.num_row_groups + rgs].sum())
        return total

    def fetch(self, row_group: int, columns: Sequence[str]) -> RowGroupBytes:
        """Fetch the stored chunks of ``columns`` (those the file has) of one row group,
        coalesced into as few ranged requests as their gaps allow, and check their
        checksums; decode them later with :meth:`read_raw` (``fetched=``). Thread-safe: a
        prefetch fetches the next row groups while the current one is decoded."""
        rg = self._check_rg(row_group)
        return self._fetch_ordinals(rg, [self._ordinal(c) for c in columns if self.has_column(c)])

    def _fetch_ordinals(self, rg: int, ords: Sequence[int]) -> RowGroupBytes:
        spans = []
        for o in dict.fromkeys(ords):
            entry = self._chunks[o * self.num_row_groups + rg]
            off, length = int(entry["offset"]), int(entry["length"])
            if off < HEADER.size or off + length > self._data_end or length < CHUNK_HEAD.size:
                raise self._corrupt(f"chunk at offset {off}, length {length} lies outside the data region", rg,
                                    self._feature(o).name)
            spans.append((off, length, o))
        spans.sort()
        joined = self._joins(spans)
        chunks: dict[int, memoryview] = {}
        fetched = 0
        i = 0
        while i < len(spans):
            # Grow a request over the gaps chosen to be read, while it stays bounded.
            start = spans[i][0]
            if not self._header_checked and start - HEADER.size <= min(self._gap, 4096):
                start = 0  # the header is a few bytes away: check it on the way
            end, j = spans[i][0] + spans[i][1], i + 1
            while j < len(spans) and joined[j - 1] and spans[j][0] + spans[j][1] - start <= MAX_COALESCED_BYTES:
                end = max(end, spans[j][0] + spans[j][1])
                j += 1
            buf = self._pread_into(start, end - start)
            fetched += end - start
            if start == 0 and not self._header_checked:
                self._check_header(buf[:HEADER.size])
            for off, length, o in spans[i:j]:
                chunk = buf[off - start: off - start + length]
                entry = self._chunks[o * self.num_row_groups + rg]
                if self._checksum(chunk) != int(entry["crc"]):
                    raise self._corrupt("chunk checksum mismatch (file damaged)", rg, self._feature(o).name)
                chunks[o] = chunk
            i = j
        return RowGroupBytes(rg, chunks, fetched)

    def _joins(self, spans: Sequence[tuple[int, int, int]]) -> list[bool]:
        """For each pair of neighbouring ``spans`` (sorted), whether one request reads both
        and the gap between: gaps up to the storage's ``coalesce_gap``, smallest first, as
        long as what they add stays within ``coalesce_overread`` of the bytes needed."""
        gaps = [spans[k + 1][0] - (spans[k][0] + spans[k][1]) for k in range(len(spans) - 1)]
        joined = [g <= self._gap for g in gaps]
        if self._overread is not None:
            budget = self._overread * sum(length for _, length, _ in spans)
            joined = [False] * len(gaps)
            for k in sorted(range(len(gaps)), key=gaps.__getitem__):
                if gaps[k] > self._gap or gaps[k] > budget:
                    break
                budget -= gaps[k]
                joined[k] = True
        return joined

    def _decode_chunk(self, feat: Feature, buf: memoryview, n: int) -> ColumnData:
        specs = stream_specs(feat)
        nstreams = CHUNK_HEAD.unpack_from(buf, 0)[0]
        if nstreams != len(specs):
            raise DecodeError(f"chunk holds {nstreams} streams, a {feat.kind} column has {len(specs)}")
        pos = CHUNK_HEAD.size
        if pos + nstreams * STREAM_HEAD.size > len(buf):
            raise DecodeError("stream heads run past the end of the chunk")
        heads = []
        for _ in range(nstreams):
            heads.append(StreamHead.unpack_from(buf, pos))
            pos += STREAM_HEAD.size
        datas = []
        for h, spec in zip(heads, specs):
            if h.dtype != spec.dtype:
                raise DecodeError(f"{spec.role} stream has element type {h.dtype}, expected {spec.dtype}")
            if pos + h.stored_size > len(buf):
                raise DecodeError(f"{spec.role} stream runs past the end of the chunk")
            datas.append(buf[pos: pos + h.stored_size])
            pos += h.stored_size
        if pos != len(buf):
            raise DecodeError(f"{len(buf) - pos} unexplained bytes at the end of the chunk")
        return decode_column(feat, ChunkStreams(specs, heads, datas), n)

    def read_raw(self, row_group: int, columns: Sequence[str],
                 fetched: RowGroupBytes | None = None) -> dict[str, ColumnData]:
        """Decode ``columns`` of one row group into raw buffers (the training path), from
        ``fetched`` (:meth:`fetch`) where given, else fetching them now."""
        rg = self._check_rg(row_group)
        ords = [self._ordinal(name) for name in columns]
        if fetched is None or fetched.row_group != rg:
            fetched = self._fetch_ordinals(rg, ords)
        return {name: self._read_chunk(o, rg, fetched) for name, o in zip(columns, ords)}

    def read_row_group(self, row_group: int, columns: Sequence[str] | None = None, *,
                       fetched: RowGroupBytes | None = None) -> pa.RecordBatch:
        """Read one row group as an Arrow record batch (from ``fetched``, :meth:`fetch`, where given)."""
        rg = self._check_rg(row_group)
        ords = self._ordinals(columns)
        n = int(self.row_group_rows[rg])
        if fetched is None or fetched.row_group != rg or any(o not in fetched.chunks for o in ords):
            fetched = self._fetch_ordinals(rg, ords)
        arrays = [to_arrow(self._feature(o), self._read_chunk(o, rg, fetched), n) for o in ords]
        return pa.RecordBatch.from_arrays(arrays, schema=self._arrow_schema(ords))

    def _ordinals(self, columns: Sequence[str] | None) -> list[int]:
        if columns is None:
            return list(range(self.num_columns))
        if isinstance(columns, str):
            raise TypeError("columns must be a list of names, not a single string")
        return [self._ordinal(c) for c in columns]

    def _arrow_schema(self, ords: list[int]) -> pa.Schema:
        # Kept per column selection: a scan asks for the same one at every row group (a few
        # kept at most: a reader may live long in a cache and be asked for many).
        key = tuple(ords)
        schema = self._arrow_schemas.get(key)
        if schema is None:
            if len(self._arrow_schemas) >= 16:
                self._arrow_schemas.clear()
            schema = self._arrow_schemas[key] = Schema(self._feature(o) for o in ords).to_arrow()
        return schema

    def read(self, columns: Sequence[str] | None = None, row_groups: Sequence[int] | None = None) -> pa.Table:
        """Read ``columns`` (all if None) of ``row_groups`` (all if None) into a ``pyarrow.Table``."""
        ords = self._ordinals(columns)
        rgs = range(self.num_row_groups) if row_groups is None else [self._check_rg(r) for r in row_groups]
        schema = self._arrow_schema(ords)
        batches = []
        for rg in rgs:
            n = int(self.row_group_rows[rg])
            fetched = self._fetch_ordinals(rg, ords)
            arrays = [to_arrow(self._feature(o), self._read_chunk(o, rg, fetched), n) for o in ords]
            batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
        return pa.Table.from_batches(batches, schema=schema)

    def verify(self) -> int:
        """Decode every chunk fully and validate it as Arrow data; return the number checked.

        Checks every descriptor against the name index, every chunk's checksum, every size
        against the footer and the schema, and every decoded chunk with Arrow's full
        validation (offsets, UTF-8), so a file that passes reads without surprises.

        Raises:
            CorruptFileError: naming the file, and the row group and column where the
                damage is inside a chunk.
        """
        if not self._header_checked:
            self._check_header(self._pread(0, HEADER.size))
        features = [self._feature(o) for o in range(self.num_columns)]
        count = 0
        for rg in range(self.num_row_groups):
            n = int(self.row_group_rows[rg])
            fetched = self._fetch_ordinals(rg, range(self.num_columns))
            for o, feat in enumerate(features):
                arr = to_arrow(feat, self._read_chunk(o, rg, fetched), n)
                try:
                    arr.validate(full=True)
                except pa.ArrowInvalid as exc:
                    raise self._corrupt(f"chunk decodes to invalid data: {exc}", rg, feat.name) from exc
                count += 1
        return count


def read_file(path: str | os.PathLike[str], columns: Sequence[str] | None = None, *,
              storage: Storage | None = None) -> pa.Table:
    """Read one whole .ssf file (or just ``columns``) into a ``pyarrow.Table``; no catalog needed."""
    with FileReader(path, storage) as r:
        return r.read(columns)

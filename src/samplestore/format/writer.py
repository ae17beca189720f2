"""Write Arrow data into an .ssf file, crash-safely: the file is published through a storage
(on a local disk: temporary name, fsync, rename; see :mod:`samplestore.storage`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from ..errors import SampleStoreError
from ..schema import Schema
from ..storage import LocalStorage, Storage
from ..version import __version__
from .columns import ChunkStats, column_streams, stats_flags, stream_specs
from .encodings import Compressor, encode_stream
from .kinds.vector import HIST_MAX_BIN, HIST_SPAN
from .spec import (
    CHUNK_ENTRY, CHUNK_HEAD, FOOTER_HEAD, HEADER, MAGIC, MAX_ROW_GROUP_ROWS, STATS_ENTRY, TRAILER,
    VERSION_MAJOR, VERSION_MINOR, checksum, name_hash,
)

__all__ = ["FileWriter", "FileInfo", "ColumnSummary", "write_file", "name_hash", "TEMP_SUFFIX"]

#: Temporary files end with this; ``verify``/``gc`` recognise leftovers by it.
TEMP_SUFFIX = ".ssf-tmp"
DEFAULT_ROW_GROUP_ROWS = 65_536


@dataclass(slots=True)
class ColumnSummary:
    """Per-file statistics of one column (summed over row groups)."""

    nulls: int = 0
    values: int = 0
    min: float | int | None = None
    max: float | int | None = None
    stored_bytes: int = 0
    missing: int = 0
    lengths: np.ndarray | None = None
    missing_by_dim: np.ndarray | None = None
    sum_by_dim: np.ndarray | None = None
    histogram: list[tuple[np.ndarray, np.ndarray]] | None = None  # per chunk, merged by extra()

    def add(self, s: ChunkStats, nbytes: int) -> None:
        self.nulls += s.nulls
        self.values += s.values
        self.stored_bytes += nbytes
        self.missing += s.missing
        if s.lengths is not None:
            self.lengths = _add_hist(self.lengths, s.lengths)
        if s.missing_by_dim is not None:
            self.missing_by_dim = s.missing_by_dim if self.missing_by_dim is None else self.missing_by_dim + s.missing_by_dim
        if s.sum_by_dim is not None:
            with np.errstate(invalid="ignore", over="ignore"):  # +inf and -inf sum to NaN: no mean
                self.sum_by_dim = s.sum_by_dim if self.sum_by_dim is None else self.sum_by_dim + s.sum_by_dim
        if s.histogram is not None:
            self.histogram = [*(self.histogram or ()), s.histogram]
        if s.min is not None:
            self.min = s.min if self.min is None else min(self.min, s.min)  # type: ignore[type-var]
            self.max = s.max if self.max is None else max(self.max, s.max)  # type: ignore[type-var]

    def extra(self) -> dict[str, Any]:
        """Kind-specific figures as JSON-ready values (sparse length histogram, NaNs and sums
        per slot of a vector)."""
        out: dict[str, Any] = {}
        if self.lengths is not None:
            nz = np.flatnonzero(self.lengths)
            out["lengths"] = [[int(i), int(self.lengths[i])] for i in nz]
        if self.missing_by_dim is not None:
            out["missing_by_dim"] = [int(x) for x in self.missing_by_dim]
        if self.sum_by_dim is not None:
            out["sum_by_dim"] = [float(x) for x in self.sum_by_dim]
        if self.histogram:
            out["histogram"] = _merged_histogram(self.histogram)
        return out


def _merged_histogram(parts: list[tuple[np.ndarray, np.ndarray]]) -> list[list[int]]:
    """Chunks' value histograms merged into ``[[slot, bin, count], ...]`` (see
    :func:`~samplestore.format.kinds.vector.value_bins`), sorted by slot and bin."""
    keys, inverse = np.unique(np.concatenate([k for k, _ in parts]), return_inverse=True)
    counts = np.bincount(inverse, weights=np.concatenate([c for _, c in parts])).astype(np.int64)
    slots, bins = np.divmod(keys, HIST_SPAN)
    return [[int(s), int(b) - HIST_MAX_BIN, int(c)] for s, b, c in zip(slots, bins, counts)]


def _add_hist(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    if a is None:
        return b.astype(np.int64)
    if len(a) < len(b):
        a, b = b, a
    out = a.astype(np.int64)
    out[: len(b)] += b
    return out


@dataclass(slots=True)
class FileInfo:
    """What a finished file holds: its path, size, rows, row groups and per-column stats."""

    path: str
    num_rows: int
    num_row_groups: int
    file_bytes: int
    columns: dict[str, ColumnSummary] = field(default_factory=dict)
    row_group_size: int = 0


class FileWriter:
    """Stream Arrow record batches into one .ssf file.

    The file is written through ``storage`` and published at ``path`` by :meth:`close`: on a
    local disk it is written under a temporary name beside ``path`` and renamed into place
    after an fsync, so a crash never leaves a partial file at ``path`` (for storages without
    rename see :mod:`samplestore.storage.base`). Rows are buffered into row groups of
    ``row_group_rows``.

    Args:
        path: destination file path (in ``storage``'s namespace).
        schema: the features to store; data is validated against it.
        row_group_rows: rows per row group (the last one may be shorter).
        compression: ``"zstd"`` or ``"none"``.
        compression_level: zstd level.
        metadata: extra JSON-serialisable key/values kept in the footer.
        storage: where the file is written; the local file system by default.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        schema: Schema,
        *,
        row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
        compression: str = "zstd",
        compression_level: int = 3,
        metadata: Mapping[str, Any] | None = None,
        storage: Storage | None = None,
    ) -> None:
        if not 1 <= row_group_rows <= MAX_ROW_GROUP_ROWS:
            raise ValueError(f"row_group_rows must be 1 to {MAX_ROW_GROUP_ROWS}, found {row_group_rows}")
        self.path = os.fspath(path)
        self.schema = schema
        self.row_group_rows = int(row_group_rows)
        self._compressor = Compressor(compression, compression_level)
        self._metadata = dict(metadata or {})
        json.dumps(self._metadata)  # fail now, not at close, if it does not serialise
        self._out = (storage or LocalStorage()).open_write(self.path, temp_suffix=TEMP_SUFFIX)
        self._pos = 0
        self._write(HEADER.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR))
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._rg_rows: list[int] = []
        self._chunks: list[list[tuple[int, int, int]]] = [[] for _ in schema]
        self._stats: list[list[tuple[int, int, int, int, int]]] = [[] for _ in schema]
        self._summary = {f.name: ColumnSummary() for f in schema}
        self._closed = False

    # -- public ---------------------------------------------------------------------------
    def write(self, data: Any) -> None:
        """Validate and buffer ``data`` (any input :meth:`Schema.conform` accepts)."""
        self._check_open()
        table = self.schema.conform(data)
        if table.num_rows == 0:
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= self.row_group_rows:
            self._flush_row_group(self.row_group_rows)

    @property
    def num_rows(self) -> int:
        """Rows written so far, including rows still buffered."""
        return sum(self._rg_rows) + self._pending_rows

    @property
    def bytes_written(self) -> int:
        """Bytes written to disk so far (buffered rows not included)."""
        return self._pos

    def close(self) -> FileInfo:
        """Flush, write the footer and publish the file at ``path``; return the file's info."""
        self._check_open()
        try:
            if self._pending_rows:
                self._flush_row_group(self._pending_rows)
            footer = self._footer()
            self._write(footer)
            self._write(TRAILER.pack(len(footer), checksum([footer]), VERSION_MAJOR, VERSION_MINOR, 0, MAGIC))
            self._out.publish()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return FileInfo(self.path, sum(self._rg_rows), len(self._rg_rows), self._pos, self._summary, self.row_group_rows)

    def abort(self) -> None:
        """Drop the file: nothing appears at ``path`` (on a local disk the temporary file is
        closed and removed)."""
        self._closed = True
        self._out.abort()

    def __enter__(self) -> "FileWriter":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- internals ------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise SampleStoreError(f"writer for {self.path!r} is closed")

    def _write(self, data: bytes | memoryview) -> None:
        self._out.write(data)
        self._pos += len(data)

    def _flush_row_group(self, nrows: int) -> None:
        table = pa.concat_tables(self._pending) if len(self._pending) > 1 else self._pending[0]
        rg = table.slice(0, nrows)
        rest = table.slice(nrows)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
        for ci, feat in enumerate(self.schema):
            col = rg.column(ci)
            arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
            self._write_chunk(ci, feat, arr)
        self._rg_rows.append(nrows)

    def _write_chunk(self, ci: int, feat: Any, arr: pa.Array) -> None:
        streams, stats = column_streams(feat, arr)
        specs = stream_specs(feat)
        heads, payloads = [], []
        by_role = {spec.role: values for spec, values in zip(specs, streams)}
        for spec, values in zip(specs, streams):
            rows = by_role[spec.rows] if spec.rows is not None else None
            head, stored = encode_stream(values, spec.dtype, spec.hint, self._compressor, spec.encoding, rows)
            heads.append(head.pack())
            payloads.append(stored)
        parts = [CHUNK_HEAD.pack(len(specs), 0, 0), *heads, *payloads]
        offset, length = self._pos, 0
        for p in parts:
            length += len(p)
            self._write(p)
        self._chunks[ci].append((offset, length, checksum(parts)))
        flags, lo, hi = stats_flags(stats, feat)
        self._stats[ci].append((stats.nulls, stats.values, lo, hi, flags))
        self._summary[feat.name].add(stats, length)

    def _footer(self) -> bytes:
        c, r = len(self.schema), len(self._rg_rows)
        names = self.schema.names
        hashes = np.array([name_hash(n) for n in names], dtype="<u8")
        order = np.argsort(hashes, kind="stable").astype("<u4")
        descs = [json.dumps(f.to_dict(), separators=(",", ":")).encode() for f in self.schema]
        desc_offsets = np.zeros(c + 1, dtype="<u8")
        np.cumsum([len(d) for d in descs], out=desc_offsets[1:])
        chunks = np.zeros((c, r), dtype=CHUNK_ENTRY)
        stats = np.zeros((c, r), dtype=STATS_ENTRY)
        for ci in range(c):
            for ri in range(r):
                off, length, crc = self._chunks[ci][ri]
                chunks[ci, ri] = (off, length, crc, 0)
                stats[ci, ri] = (*self._stats[ci][ri][:4], self._stats[ci][ri][4], 0)
        meta = json.dumps({"created_by": f"samplestore {__version__}", "row_group_rows": self.row_group_rows,
                           "user": self._metadata}, separators=(",", ":")).encode()
        desc_blob = b"".join(descs)
        pad = b"\0\0\0\0" if c % 2 else b""
        return b"".join([
            FOOTER_HEAD.pack(c, r, sum(self._rg_rows), self.row_group_rows, len(desc_blob), len(meta)),
            np.asarray(self._rg_rows, dtype="<u8").tobytes(),
            hashes[order].tobytes(),
            order.tobytes(), pad,
            desc_offsets.tobytes(),
            chunks.tobytes(),
            stats.tobytes(),
            desc_blob,
            meta,
        ])


def write_file(path: str | os.PathLike[str], data: Any, schema: Schema, **options: Any) -> FileInfo:
    """Write ``data`` (anything :meth:`Schema.conform` accepts) to one .ssf file.

    Options are those of :class:`FileWriter`. Returns the file's :class:`FileInfo`.
    """
    writer = FileWriter(path, schema, **options)
    try:
        writer.write(data)
    except BaseException:
        writer.abort()
        raise
    return writer.close()

"""Bulk ingest from Parquet, CSV/TSV and the Criteo click-log TSV layout.

Each source is read as a stream of Arrow batches and written through one streaming writer
that commits once at the end: a file that does not match the schema raises
:class:`~samplestore.errors.SchemaError` naming the column and the first bad row (counted
from the start of the source), and nothing is committed.

A new table's schema can be inferred from a Parquet or CSV/TSV file's columns
(:func:`infer_schema`, after :meth:`Schema.infer`), as ``samplestore ingest --create`` does. A
file whose format is neither named nor recognised (by its extension or Parquet's magic bytes)
is refused with an error saying to name it, never read as the wrong format.

A source is a local path or a URI, as a store root is (``s3://bucket/day.parquet?endpoint_override=...``):
it is opened through :func:`samplestore.storage.open_input`.
"""

from __future__ import annotations

import io
import os
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import SchemaError
from ..schema import Dense, Label, Scalar, Schema, Sparse
from ..storage import location_path, open_input, redact
from .writer import StreamingWriter

__all__ = ["criteo_tsv_schema", "read_criteo_tsv", "read_csv", "read_parquet", "ingest", "hex_to_int64",
           "guess_format", "source_arrow_schema", "infer_schema", "with_constant_columns", "CRITEO_DENSE", "CRITEO_SPARSE", "FORMATS"]

CRITEO_DENSE = 13
CRITEO_SPARSE = 26
FORMATS = ("parquet", "csv", "tsv", "criteo")
_BLOCK = 8 << 20

_HEX = np.full(256, -1, dtype=np.int16)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def _shown(path: Any) -> str:
    """A source's name for messages: a URI's credentials masked."""
    return redact(os.fspath(path))


def criteo_tsv_schema() -> Schema:
    """Schema of Criteo click logs: ``click``, ``dense`` [13] (NaN where missing), ``c0``..``c25``."""
    return Schema([Label("click"), Dense("dense", dim=CRITEO_DENSE),
                   *[Sparse(f"c{i}") for i in range(CRITEO_SPARSE)]])


class _CountingFile(io.RawIOBase):
    """A read-only file (a local path or a URI) that counts the bytes read (for progress)."""

    def __init__(self, path: str, on_bytes: Callable[[int], None] | None) -> None:
        self._f = open_input(path)
        self._on = on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._f.readinto(b)
        if n and self._on:
            self._on(n)
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


def hex_to_int64(arr: pa.Array, column: str = "", first_row: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Parse hex strings (up to 16 digits) into int64 ids, vectorised.

    Returns ``(values, valid)``: nulls and empty strings are not valid. Raises SchemaError
    naming the column and row of the first string that is not hex.
    """
    n = len(arr)
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    valid = arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else np.ones(n, bool)
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset: arr.offset + n + 1].astype(np.int64)
    lengths = np.diff(offsets)
    lengths[~valid] = 0
    valid &= lengths > 0
    values = np.zeros(n, dtype=np.uint64)
    if not valid.any():
        return values.view(np.int64), valid
    if lengths.max() > 16:
        r = int(np.argmax(lengths > 16))
        raise SchemaError(f"column {column!r} at row {first_row + r}: expected at most 16 hex digits, found {lengths[r]}")
    data = np.frombuffer(arr.buffers()[2], np.uint8)
    rows = np.flatnonzero(valid)
    starts, lens = offsets[rows], lengths[rows]
    # Byte positions of every digit of every valid row, and each digit's power of 16.
    idx = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(int(lens.sum()))
    nib = _HEX[data[idx]]
    if (nib < 0).any():
        bad = int(np.flatnonzero(nib < 0)[0])
        r = int(rows[np.searchsorted(np.cumsum(lens), bad, side="right")])
        raise SchemaError(f"column {column!r} at row {first_row + r}: expected a hex id, found {arr[r].as_py()!r}")
    shift = (np.repeat(starts + lens, lens) - 1 - idx).astype(np.uint64) * np.uint64(4)
    contrib = nib.astype(np.uint64) << shift
    values[rows] = np.add.reduceat(contrib, np.concatenate([[0], np.cumsum(lens)[:-1]]))
    return values.view(np.int64), valid


def read_criteo_tsv(path: str, batch_rows: int = 65_536, on_bytes: Callable[[int], None] | None = None) -> Iterator[pa.Table]:
    """Stream a Criteo TSV (label, 13 integers, 26 hex categoricals; empty = missing)."""
    names = ["label", *[f"i{k}" for k in range(1, CRITEO_DENSE + 1)], *[f"c{k}" for k in range(CRITEO_SPARSE)]]
    types = {"label": pa.int64(), **{f"i{k}": pa.float64() for k in range(1, CRITEO_DENSE + 1)},
             **{f"c{k}": pa.string() for k in range(CRITEO_SPARSE)}}
    row = 0
    try:
        reader = pacsv.open_csv(
            _CountingFile(path, on_bytes),
            read_options=pacsv.ReadOptions(column_names=names, block_size=_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, null_values=[""]),
        )
        for batch in reader:
            yield _criteo_batch(batch, row)
            row += batch.num_rows
    except pa.ArrowInvalid as exc:
        raise SchemaError(f"{_shown(path)!r} is not a Criteo TSV file (after row {row}): {exc}") from exc


def _criteo_batch(batch: pa.RecordBatch, first_row: int) -> pa.Table:
    n = batch.num_rows
    label = batch.column("label")
    if label.null_count:
        r = int(np.argmax(~label.is_valid().to_numpy(zero_copy_only=False)))
        raise SchemaError(f"column 'label' at row {first_row + r}: expected 0 or 1, found an empty field")
    dense = np.empty((n, CRITEO_DENSE), dtype=np.float32)
    for k in range(CRITEO_DENSE):
        dense[:, k] = batch.column(f"i{k + 1}").to_numpy(zero_copy_only=False)  # null -> NaN
    cols: dict[str, pa.Array] = {
        "click": label.cast(pa.float32()),
        "dense": pa.FixedSizeListArray.from_arrays(pa.array(dense.reshape(-1)), CRITEO_DENSE),
    }
    for k in range(CRITEO_SPARSE):
        values, valid = hex_to_int64(batch.column(f"c{k}"), f"c{k}", first_row)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(valid, out=offsets[1:])
        cols[f"c{k}"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[valid]))
    return pa.table(cols)


def read_csv(path: str, delimiter: str = ",", on_bytes: Callable[[int], None] | None = None,
             schema: Schema | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a CSV/TSV file with a header row; column types come from the schema."""
    types = {}
    if schema is not None:
        for f in schema:
            t = f.arrow_type()
            if not (pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_struct(t)):
                types[f.name] = t
    try:
        reader = pacsv.open_csv(
            _CountingFile(path, on_bytes),
            read_options=pacsv.ReadOptions(block_size=_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
        yield from reader
    except pa.ArrowInvalid as exc:
        raise SchemaError(f"{_shown(path)!r} does not parse as delimited text matching the schema: {exc}") from exc


def _not_parquet(path: str, exc: Exception) -> SchemaError:
    return SchemaError(f"{_shown(path)!r} does not read as a Parquet file ({exc}); if it is CSV, TSV or a Criteo "
                       f"log, say so with --format csv|tsv|criteo (fmt= in Python)")


def read_parquet(path: str, batch_rows: int = 65_536, on_bytes: Callable[[int], None] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a Parquet file's record batches.

    Raises:
        SchemaError: the file is not Parquet or is damaged (named, with what to do).
    """
    with open_input(path) as source:
        try:
            pf = pq.ParquetFile(source)
            total = max(1, pf.metadata.num_rows)
            size = source.size()
            for batch in pf.iter_batches(batch_size=batch_rows):
                if on_bytes:
                    on_bytes(int(size * batch.num_rows / total))
                yield batch
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise _not_parquet(path, exc) from exc


def source_batches(path: str, fmt: str, schema: Schema, on_bytes: Callable[[int], None] | None = None) -> Iterator[Any]:
    """Batches of one source file in the given format."""
    if fmt == "criteo":
        return read_criteo_tsv(path, on_bytes=on_bytes)
    if fmt == "parquet":
        return read_parquet(path, on_bytes=on_bytes)
    if fmt in ("csv", "tsv"):
        return read_csv(path, "\t" if fmt == "tsv" else ",", on_bytes, schema)
    raise SchemaError(f"unknown ingest format {fmt!r}; known: {list(FORMATS)}")


_EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv"}
_PARQUET_MAGIC = b"PAR1"


def guess_format(path: str) -> str:
    """The format of a source file: from its name (.parquet/.pq, .csv, .tsv/.txt), else
    Parquet if the file starts with Parquet's magic bytes (``criteo`` must be asked for).

    Raises:
        SchemaError: the name has no known extension and the file is not Parquet.
    """
    fmt = _EXTENSIONS.get(os.path.splitext(location_path(path))[1].lower())
    if fmt is not None:
        return fmt
    with open_input(path) as f:
        head = f.read(len(_PARQUET_MAGIC))
    if head == _PARQUET_MAGIC:
        return "parquet"
    raise SchemaError(
        f"could not recognise the format of {_shown(path)!r}: its name does not end in "
        f"{', '.join(sorted(_EXTENSIONS))} and it is not a Parquet file; pass --format "
        f"parquet|csv|tsv|criteo (fmt= in Python)")


def source_arrow_schema(path: str, fmt: str | None = None) -> pa.Schema:
    """The Arrow schema of a Parquet or CSV/TSV source file, as ingest would read it
    (CSV/TSV column types are inferred from the first block of rows, as pyarrow does).

    Raises:
        SchemaError: the file does not read in that format, or ``fmt`` is ``criteo`` (whose
            schema is fixed: :func:`criteo_tsv_schema`).
    """
    fmt = fmt or guess_format(path)
    if fmt == "parquet":
        try:
            with open_input(path) as source:
                return pq.read_schema(source)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise _not_parquet(path, exc) from exc
    if fmt in ("csv", "tsv"):
        try:
            with _CountingFile(path, None) as f:
                return pacsv.open_csv(
                    f, read_options=pacsv.ReadOptions(block_size=_BLOCK),
                    parse_options=pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
                    convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
                ).schema
        except pa.ArrowInvalid as exc:
            raise SchemaError(f"{_shown(path)!r} does not parse as {fmt.upper()} with a header row: {exc}") from exc
    if fmt == "criteo":
        raise SchemaError("a Criteo log has a fixed schema (criteo_tsv_schema()); there is nothing to infer")
    raise SchemaError(f"unknown ingest format {fmt!r}; known: {list(FORMATS)}")


def infer_schema(path: str, fmt: str | None = None, *, labels: Sequence[str] = (), dense: Sequence[str] = (),
                 ids: Sequence[str] = ()) -> Schema:
    """The schema :meth:`Schema.infer` gives for the columns of a source file (see
    :func:`source_arrow_schema`); a Criteo log gets :func:`criteo_tsv_schema`.

    Raises:
        SchemaError: see :meth:`Schema.infer` and :func:`source_arrow_schema`; for a Criteo
            log, ``labels``/``dense``/``ids`` were given (its schema is fixed).
    """
    fmt = fmt or guess_format(path)
    if fmt == "criteo":
        if labels or dense or ids:
            raise SchemaError("labels, dense and ids (--label, --dense, --ids) do not apply to a Criteo log: "
                              "its schema is fixed (click, dense[13], c0..c25); leave them out")
        return criteo_tsv_schema()
    return Schema.infer(source_arrow_schema(path, fmt), labels=labels, dense=dense, ids=ids)


def with_constant_columns(batch: pa.Table, values: Mapping[str, Any], path: str) -> pa.Table:
    """``batch`` with a column per entry of ``values`` holding that value in every row.

    Raises:
        SchemaError: ``batch`` has such a column already.
    """
    for name, value in values.items():
        if name in batch.column_names:
            raise SchemaError(f"{_shown(path)!r} has a column {name!r} already; give its value with --partition "
                              f"(partition=) only for columns the file lacks")
        batch = batch.append_column(name, pa.array([value] * batch.num_rows))
    return batch


def ingest(table: Any, paths: Sequence[str], fmt: str | None = None, *,
           on_bytes: Callable[[int], None] | None = None, on_rows: Callable[[int], None] | None = None,
           partition: Mapping[str, Any] | None = None, **writer_options: Any) -> int | None:
    """Ingest files into ``table`` as one commit; return the snapshot id (None if empty).

    ``partition`` gives columns the sources lack, one value for every row (e.g.
    ``{"ds": "2026-11-20"}`` for a day's Criteo log, whose layout has no date column).

    Raises:
        SchemaError: a source does not match the table's schema (column and row named), or
            holds a column ``partition`` gives; nothing is committed and no file is left behind.
        DataQualityError: the rows broke a ``reject`` expectation; nothing is committed.
    """
    w = StreamingWriter(table, commit_every_rows=None, operation="append", writer_id=None, **writer_options)
    schema = table.schema
    try:
        for path in paths:
            f = fmt or guess_format(path)
            rows = 0
            for batch in source_batches(path, f, schema, on_bytes):
                batch = with_constant_columns(batch, partition or {}, path)
                try:
                    w.write(batch)
                except SchemaError as exc:
                    raise SchemaError(f"{_shown(path)!r}, in the batch starting at row {rows}: {exc}") from exc
                rows += batch.num_rows
                if on_rows:
                    on_rows(batch.num_rows)
        return w.close_once(f"ingest of {len(paths)} file(s)")
    except BaseException:
        w.abort()
        raise

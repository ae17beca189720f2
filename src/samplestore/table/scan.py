"""Scan planning and execution: snapshot, column projection, partition and statistics pruning.

Pruning is sound: each file (and each row group) gets a *guarantee*, an expression true for
every one of its rows (its partition values; the min/max of its int and timestamp columns
where it has no nulls), and Arrow's expression simplification (``pyarrow.dataset``) keeps
only the files whose guarantee is compatible with the filter. Rows of the surviving files
are then filtered exactly.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.base import DataFile
from ..errors import SchemaError
from ..format import FileReader
from ..schema import Scalar, Schema
from .partition import partition_expression

if TYPE_CHECKING:
    from .table import Table

__all__ = ["Scan", "ScanPlan", "FileTask", "live_mask"]

_PRUNE_TYPES = ("int32", "int64", "timestamp")


@dataclass(frozen=True, slots=True)
class FileTask:
    """One file to read: its absolute path, the row groups to read and their row counts."""

    path: str
    file_id: int
    partition: dict
    num_rows: int
    row_groups: tuple[int, ...]
    deleted: "np.ndarray | None" = None  # sorted row positions deleted as of the snapshot

    @property
    def live_rows(self) -> int:
        return self.num_rows - (len(self.deleted) if self.deleted is not None else 0)


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """What a scan reads: the pinned snapshot, the schema of the output and the files."""

    snapshot_id: int
    schema: Schema
    columns: tuple[str, ...]
    tasks: tuple[FileTask, ...]

    @property
    def num_files(self) -> int:
        return len(self.tasks)

    @property
    def num_rows(self) -> int:
        """Live rows in the planned files (deleted rows excluded; before row filtering)."""
        return sum(t.live_rows for t in self.tasks)


def live_mask(deleted: np.ndarray, start: int, n: int) -> np.ndarray | None:
    """Boolean mask of the rows [start, start + n) of a file not deleted (None: all live)."""
    a, b = np.searchsorted(deleted, [start, start + n])
    if a == b:
        return None
    keep = np.ones(n, dtype=bool)
    keep[deleted[a:b] - start] = False
    return keep


def _range_guarantee(name: str, t: pa.DataType, lo: object, hi: object) -> pc.Expression:
    return (pc.field(name) >= pa.scalar(lo, type=t)) & (pc.field(name) <= pa.scalar(hi, type=t))


def _file_guarantee(schema: Schema, f: DataFile, prune_cols: Sequence[str]) -> pc.Expression:
    expr = partition_expression(schema, f.partition)
    for name in prune_cols:
        s = f.stats.get(name)
        if s is None:
            continue
        t = schema.field(name).arrow_type()
        if s.values == 0 and s.nulls > 0:
            e = pc.field(name).is_null()
        elif s.nulls == 0 and s.min is not None:
            e = _range_guarantee(name, t, s.min, s.max)
        else:
            continue
        expr = e if expr is None else expr & e
    return expr if expr is not None else pc.scalar(True)


def _referenced(schema: Schema, expr: pc.Expression) -> list[str]:
    """A superset of the columns a filter reads (names appearing as words in its text)."""
    text = str(expr)
    return [n for n in schema.names if re.search(rf"(?<![\w.\-]){re.escape(n)}(?![\w.\-])", text)]


def _prune(arrow_schema: pa.Schema, keys: list[object], guarantees: list[pc.Expression],
           expr: pc.Expression) -> list[object]:
    """Keys whose guarantee does not contradict ``expr`` (Arrow's simplification, no I/O)."""
    if not keys:
        return []
    # Imported here, as only filtered scans need it: pyarrow.dataset also imports pandas where
    # installed, ~50 MB of resident memory in every DataLoader worker that never filters.
    import pyarrow.dataset as pads
    import pyarrow.fs as pafs

    paths = [f"/{i}" for i in range(len(keys))]
    ds = pads.FileSystemDataset.from_paths(paths, schema=arrow_schema, format=pads.ParquetFileFormat(),
                                           filesystem=pafs.LocalFileSystem(), partitions=guarantees)
    return [keys[int(fr.path[1:])] for fr in ds.get_fragments(filter=expr)]


class Scan:
    """A read of a table at a pinned snapshot.

    Args:
        table: the table.
        columns: features to return (all if None), in this order.
        filter: a ``pyarrow.compute`` expression on the table's columns.
        snapshot: snapshot id to read (the current one if None).
        as_of: read the last snapshot committed at or before this time (epoch seconds or
            ``datetime``).
    """

    def __init__(self, table: "Table", columns: Sequence[str] | None = None, filter: pc.Expression | None = None,
                 snapshot: int | None = None, as_of: object = None) -> None:
        self.table = table
        self.snapshot_id = table._resolve_snapshot(snapshot, as_of)
        self.schema = table._schema_at(self.snapshot_id)
        if isinstance(columns, str):
            raise TypeError("columns must be a list of names, not a single string")
        self.columns = tuple(columns) if columns is not None else tuple(self.schema.names)
        self.out_schema = self.schema.select(self.columns)
        self.filter = filter
        self._filter_cols = _referenced(self.schema, filter) if filter is not None else []
        self._plan: ScanPlan | None = None

    def plan(self) -> ScanPlan:
        """The files and row groups this scan reads, after partition and statistics pruning."""
        if self._plan is not None:
            return self._plan
        prune_cols = [n for n in self._filter_cols
                      if isinstance(self.schema.field(n), Scalar) and self.schema.field(n).dtype in _PRUNE_TYPES]
        files = self.table._catalog.files(self.table.name, self.snapshot_id, with_stats=prune_cols)
        if self.filter is not None and files:
            arrow_schema = self.schema.to_arrow()
            files = _prune(arrow_schema, files, [_file_guarantee(self.schema, f, prune_cols) for f in files], self.filter)
        dvs = self.table._catalog.deleted_positions(self.table.name, self.snapshot_id, [f.file_id for f in files])
        tasks = tuple(
            FileTask(os.path.join(self.table.dir, f.path), int(f.file_id), dict(f.partition), f.num_rows,
                     tuple(range(f.num_row_groups)), dvs.get(f.file_id))
            for f in files
        )
        self._plan = ScanPlan(self.snapshot_id, self.out_schema, self.columns, tasks)
        return self._plan

    def _row_groups(self, reader: FileReader, task: FileTask) -> list[int]:
        """Row groups of a file that may hold matching rows (footer min/max pruning)."""
        rgs = list(task.row_groups)
        if self.filter is None or len(rgs) <= 1:
            return rgs
        cols = [c for c in self._filter_cols if isinstance(self.schema.field(c), Scalar)
                and self.schema.field(c).dtype in _PRUNE_TYPES and reader.has_column(c)]
        if not cols:
            return rgs
        guarantees = []
        for rg in rgs:
            expr = None
            for c in cols:
                st = reader.chunk_stats(c)[rg]
                mm = reader.minmax(c, rg)
                if mm is None or st["nulls"]:
                    continue
                e = _range_guarantee(c, self.schema.field(c).arrow_type(), mm[0], mm[1])
                expr = e if expr is None else expr & e
            guarantees.append(expr if expr is not None else pc.scalar(True))
        return _prune(self.schema.to_arrow(), rgs, guarantees, self.filter)

    def _read_columns(self) -> list[str]:
        extra = [c for c in self._filter_cols if c not in self.columns]
        return list(self.columns) + extra

    def _batches(self) -> Iterator[pa.RecordBatch]:
        plan = self.plan()
        read_cols = self._read_columns()
        read_schema = self.schema.select(read_cols)
        out_arrow = self.out_schema.to_arrow()
        for task in plan.tasks:
            with FileReader(task.path) as reader:
                present = [c for c in read_cols if reader.has_column(c)]
                for rg in self._row_groups(reader, task):
                    batch = reader.read_row_group(rg, present)
                    if task.deleted is not None:
                        keep = live_mask(task.deleted, int(reader.row_group_starts[rg]), batch.num_rows)
                        if keep is not None:
                            batch = batch.filter(pa.array(keep))
                    if len(present) != len(read_cols):
                        # Features added after this file was written read as their defaults.
                        n = batch.num_rows
                        arrays = [batch.column(c) if c in present else read_schema.field(c).default_array(n)
                                  for c in read_cols]
                        batch = pa.RecordBatch.from_arrays(arrays, schema=read_schema.to_arrow())
                    if self.filter is not None:
                        try:
                            batch = batch.filter(self.filter)
                        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                            raise SchemaError(f"filter {self.filter} does not apply to table {self.table.name!r}: {exc}") from exc
                        if batch.num_rows == 0:
                            continue
                    if len(read_cols) != len(self.columns):
                        batch = batch.select(list(self.columns))
                    yield batch.cast(out_arrow) if batch.schema != out_arrow else batch

    def to_batches(self) -> pa.RecordBatchReader:
        """A ``pyarrow.RecordBatchReader`` over the result (one batch per row group)."""
        return pa.RecordBatchReader.from_batches(self.out_schema.to_arrow(), self._batches())

    def to_arrow(self) -> pa.Table:
        """The whole result as a ``pyarrow.Table``."""
        return pa.Table.from_batches(list(self._batches()), schema=self.out_schema.to_arrow())

    def count(self) -> int:
        """Number of rows the scan returns (from the catalog when there is no filter)."""
        if self.filter is None:
            return self.plan().num_rows
        return sum(b.num_rows for b in self._batches())

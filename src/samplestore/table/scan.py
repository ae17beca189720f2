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
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.base import DataFile
from ..errors import CorruptFileError, SchemaError, SnapshotNotFound
from ..extras import require_extra
from ..format import FileReader, RowGroupBytes, footer_bytes_estimate
from ..schema import Scalar, Schema
from .lease import Lease
from .partition import partition_expression

if TYPE_CHECKING:
    import pandas
    import polars

    from .table import Table

__all__ = ["Scan", "ScanPlan", "FileTask", "live_mask", "deleted_among", "check_filter", "filter_mask", "DEFAULT_LEASE_SECONDS"]

_PRUNE_TYPES = ("int32", "int64", "timestamp")
_ARROW_INSTEAD = "Scan.to_arrow() gives the same data without it"
#: How long a reader's lease on its snapshot lasts without a renewal (its heartbeat renews it
#: every third of that while the reader lives).
DEFAULT_LEASE_SECONDS = 300.0


#: On a remote storage, how many files a scan opens and row groups it fetches ahead.
REMOTE_IN_FLIGHT = 4


@dataclass(frozen=True, slots=True)
class FileTask:
    """One file to read: its absolute path, the row groups to read and their row counts."""

    path: str
    file_id: int
    partition: dict
    num_rows: int
    row_groups: tuple[int, ...]
    deleted: "np.ndarray | None" = None  # sorted row positions deleted as of the snapshot
    row_group_rows: tuple[int, ...] | None = None  # rows of each row group (None: ask the file)

    @classmethod
    def of(cls, table_dir: str, f: DataFile, deleted: "np.ndarray | None") -> "FileTask":
        """The task reading every row group of a catalog file (``deleted``: its deleted rows)."""
        return cls(os.path.join(table_dir, f.path), int(f.file_id), dict(f.partition), f.num_rows,
                   tuple(range(f.num_row_groups)), deleted,
                   # Catalogs older than the row_group_size column do not know it.
                   tuple(f.row_group_rows()) if f.row_group_size or f.num_row_groups <= 1 else None)

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


def deleted_among(deleted: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Which of ``positions`` (row positions in a file, any order) are in ``deleted`` (the
    file's sorted deleted positions, as a deletion vector holds them)."""
    positions = np.asarray(positions, dtype=np.int64)
    if not len(deleted):
        return np.zeros(len(positions), dtype=bool)
    at = np.minimum(np.searchsorted(deleted, positions), len(deleted) - 1)
    return deleted[at] == positions


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


def check_filter(schema: Schema, expr: pc.Expression | None, table_name: str) -> list[str]:
    """Check that a row filter applies to ``schema`` and selects rows; return the columns it reads.

    Raises:
        SchemaError: the filter names a column the table does not have (the message names it
            and lists the table's columns), compares incompatible types, or is not boolean.
        TypeError: ``expr`` is not a ``pyarrow.compute.Expression``.
    """
    if expr is None:
        return []
    if not isinstance(expr, pc.Expression):
        raise TypeError(f"filter must be a pyarrow.compute.Expression (e.g. pc.field('ds') == '2026-11-01'); "
                        f"found {type(expr).__name__}")
    import pyarrow.dataset as pads

    if re.search(r"FieldPath\(|FieldRef\.Nested\(", str(expr)):
        # Columns are found by name (to read only those): a position or a nested path would
        # silently read nothing.
        raise SchemaError(f"filter {expr} refers to a column by position or by a nested path; name the column "
                          f"instead (pc.field('name')); columns of table {table_name!r}: {schema.names}")
    try:  # bind the expression to the schema without reading anything
        out = pads.dataset(schema.to_arrow().empty_table()).to_table(columns={"_m": expr}).column("_m").type
    except pa.ArrowInvalid as exc:
        m = re.search(r"No match for FieldRef\.Name\((.*?)\)", str(exc))
        if m:
            raise SchemaError(f"filter {expr} names column {m.group(1)!r}, which table {table_name!r} does not have; "
                              f"columns: {schema.names}") from exc
        raise SchemaError(f"filter {expr} does not apply to table {table_name!r}: {exc}") from exc
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise SchemaError(f"filter {expr} does not apply to the column types of table {table_name!r}: {exc}") from exc
    if not (pa.types.is_boolean(out) or pa.types.is_null(out)):
        raise SchemaError(f"filter {expr} must be a boolean expression; it gives {out} (table {table_name!r})")
    return _referenced(schema, expr)


def filter_mask(batch: pa.RecordBatch | pa.Table, expr: pc.Expression, num_rows: int) -> np.ndarray:
    """Boolean mask of the ``num_rows`` rows of ``batch`` that ``expr`` selects (null: not selected).

    ``batch`` may have no columns (a filter that reads none, such as ``pc.scalar(True)``).
    """
    import pyarrow.dataset as pads

    if batch.num_columns == 0:
        batch = pa.table({"__rows": pa.nulls(num_rows)})
    elif isinstance(batch, pa.RecordBatch):
        batch = pa.Table.from_batches([batch])
    mask = pads.dataset(batch).to_table(columns={"_m": expr}).column("_m")
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


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

    The snapshot is pinned by a lease from planning to the last batch: garbage collection
    keeps its files, however slowly the result is consumed. If the lease lapses (the reader
    stalled past ``lease_seconds`` without a renewal), reading raises
    :class:`~samplestore.errors.LeaseExpired` rather than a missing-file error.

    Args:
        table: the table.
        columns: features to return (all if None), in this order.
        filter: a ``pyarrow.compute`` expression on the table's columns; rows are filtered
            exactly (files and row groups are pruned first by partition values and statistics).
        snapshot: snapshot id to read (the current one if None).
        as_of: read the last snapshot committed at or before this time (epoch seconds or
            ``datetime``).
        lease_seconds: lifetime of the lease without renewal.
        include_quarantined: read the files of open quarantines too (see ``Table.quarantines``).

    Raises:
        SchemaError: a column or the filter does not fit the table (named in the message).
    """

    def __init__(self, table: "Table", columns: Sequence[str] | None = None, filter: pc.Expression | None = None,
                 snapshot: int | None = None, as_of: object = None,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS, include_quarantined: bool = False) -> None:
        self.table = table
        self.include_quarantined = include_quarantined
        self._follows_current = snapshot is None and as_of is None
        if isinstance(columns, str):
            raise TypeError("columns must be a list of names, not a single string")
        self._resolve(snapshot, as_of)
        self.columns = tuple(columns) if columns is not None else tuple(self.schema.names)
        for c in self.columns:
            if c not in self.schema:
                raise SchemaError(f"table {table.name!r} has no column {c!r}; columns: {self.schema.names}")
        self.out_schema = self.schema.select(self.columns)
        self.filter = filter
        self._filter_cols = check_filter(self.schema, filter, table.name)
        self._partition_by = table.partition_by if filter is not None else ()
        self.lease_seconds = lease_seconds
        self._lease: Lease | None = None
        self._plan: ScanPlan | None = None

    def _resolve(self, snapshot: int | None = None, as_of: object = None) -> None:
        """Choose the snapshot and read its schema. "The current snapshot" may expire between
        the two reads (a commit and an expiry in between): then the new current one is taken."""
        for _attempt in range(10):
            sid = self.table.resolve_snapshot(snapshot, as_of)
            try:
                self.schema = self.table.schema_at(sid)
            except SnapshotNotFound:
                if not self._follows_current:
                    raise
                continue
            self.snapshot_id = sid
            return
        raise SnapshotNotFound(f"table {self.table.name!r}: snapshots kept expiring before one could be read; "
                               "try again")

    # -- the lease ---------------------------------------------------------------------------
    def _pin(self) -> None:
        """Lease the snapshot. A lease is only good on a snapshot that is still retained: if
        expiry dropped it since it was resolved, a scan of "the current snapshot" moves to the
        new current one; a scan of an explicit snapshot fails with SnapshotNotFound."""
        if self._lease is not None:  # held (a lapsed one is reported by check_lease)
            return
        catalog, name = self.table.catalog, self.table.name
        for _attempt in range(10):
            if self.snapshot_id == 0:  # the empty table: no files to protect
                return
            try:
                # The catalog grants it only on a snapshot still retained, in one transaction.
                self._lease = Lease(catalog, name, self.snapshot_id, ttl=self.lease_seconds)
            except SnapshotNotFound:
                if not self._follows_current or self._plan is not None:
                    raise
                self._resolve()
                self.out_schema = self.schema.select(self.columns)
                continue
            return
        raise SnapshotNotFound(f"table {name!r}: snapshots kept expiring before a lease could pin one; try again")

    def check_lease(self) -> None:
        """Raise LeaseExpired if the lease pinning this scan's snapshot lapsed."""
        if self._lease is not None:
            self._lease.check()

    def take_lease(self) -> Lease | None:
        """Hand the lease over to the caller (who then renews it by keeping it and releases it)."""
        self.plan()
        lease, self._lease = self._lease, None
        return lease

    def close(self) -> None:
        """Release the lease now (it is also released when the scan is garbage-collected)."""
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def __enter__(self) -> "Scan":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- planning ----------------------------------------------------------------------------
    def plan(self) -> ScanPlan:
        """The files and row groups this scan reads, after partition and statistics pruning.

        Takes the scan's lease (see the class docstring) if it holds none.
        """
        self._pin()
        if self._plan is not None:
            return self._plan
        prune_cols = [n for n in self._filter_cols
                      if isinstance(self.schema.field(n), Scalar) and self.schema.field(n).dtype in _PRUNE_TYPES]
        files = self.table.catalog.files(self.table.name, self.snapshot_id, with_stats=prune_cols,
                                         include_quarantined=self.include_quarantined)
        if self.filter is not None and files:
            arrow_schema = self.schema.to_arrow()
            files = _prune(arrow_schema, files, [_file_guarantee(self.schema, f, prune_cols) for f in files], self.filter)
        dvs = self.table.catalog.deleted_positions(self.table.name, self.snapshot_id, [f.file_id for f in files])
        tasks = tuple(FileTask.of(self.table.dir, f, dvs.get(f.file_id)) for f in files)
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

    # -- reading -----------------------------------------------------------------------------
    def _open(self, task: FileTask) -> FileReader:
        """Open a planned file; a missing one is a lapsed lease or damage, said as such."""
        self.check_lease()
        try:
            # The footer grows with columns x row groups: sized so that opening takes one request.
            hint = footer_bytes_estimate(len(self.schema), len(task.row_groups))
            return FileReader(task.path, self.table.storage, footer_hint=hint)
        except FileNotFoundError as exc:
            self.check_lease()  # GC removed it because the lease lapsed: say that
            raise CorruptFileError(f"data file of snapshot {self.snapshot_id} of table {self.table.name!r} is missing "
                                   "although the snapshot is leased (removed outside samplestore?)",
                                   path=task.path) from exc

    def _read(self, reader: FileReader, rg: int, cols: Sequence[str], schema: Schema,
              fetched: RowGroupBytes | None = None) -> pa.RecordBatch:
        """Columns ``cols`` of a row group (from ``fetched`` where prefetched); features added
        after the file was written read as their defaults."""
        present = [c for c in cols if reader.has_column(c)]
        batch = reader.read_row_group(rg, present, fetched=fetched)
        if len(present) != len(cols):
            batch = schema.select(cols).fill_missing(batch)
        return batch

    def _keep(self, task: FileTask, start: int, batch: pa.RecordBatch | None, n: int,
              partition_match: bool | None) -> np.ndarray | None:
        """Mask of the rows [start, start + n) of a file that are live and match the filter
        (None: all of them). ``batch`` holds at least the filter's columns."""
        keep = live_mask(task.deleted, start, n) if task.deleted is not None else None
        if self.filter is None or partition_match is True:
            return keep
        if partition_match is False:
            return np.zeros(n, dtype=bool)
        assert batch is not None  # a row filter reads the batch; callers pass one
        hit = filter_mask(batch.select(self._filter_cols), self.filter, n)
        return hit if keep is None else keep & hit

    def _partition_match(self, task: FileTask) -> bool | None:
        """Whether every row of a file matches a filter that reads only partition columns
        (True/False), or None when the filter reads other columns too (rows decide)."""
        if self.filter is None or not self._filter_cols:
            return None
        parts = self._partition_by
        if not all(c in parts and c in task.partition for c in self._filter_cols):
            return None
        one = pa.table({c: pa.array([task.partition[c]], type=self.schema.field(c).arrow_type())
                        for c in self._filter_cols})
        return bool(filter_mask(one, self.filter, 1)[0])

    def selections(self, tasks: Sequence[FileTask] | None = None) -> Iterator[tuple[FileTask, int, int, np.ndarray | None]]:
        """For every planned row group (or every row group of ``tasks``): ``(task, row group,
        rows, selected)``, where ``selected`` holds the sorted positions (within the row
        group) of the rows that are live and match the filter, or is None when all rows are
        selected. Reads only the filter's columns, and nothing when the filter reads none or
        only partition columns.
        """
        if tasks is None:
            tasks = self.plan().tasks
        else:
            self._pin()
        cols = list(self._filter_cols)
        for task in tasks:
            pm = self._partition_match(task)
            needs_rows = self.filter is not None and pm is None and bool(cols)
            if not needs_rows and self.filter is not None and pm is None:
                # A filter reading no column (a constant): evaluate it once for the file.
                pm = bool(filter_mask(pa.table({}), self.filter, 1)[0])
            if needs_rows:
                reader = self._open(task)
                try:
                    starts = [int(x) for x in reader.row_group_starts]
                    rows = [int(x) for x in reader.row_group_rows]
                    rgs = set(self._row_groups(reader, task))
                    for rg in task.row_groups:
                        if rg not in rgs:  # statistics say no row matches
                            yield task, rg, rows[rg], np.zeros(0, np.int64)
                            continue
                        batch = self._read(reader, rg, cols, self.schema)
                        keep = self._keep(task, starts[rg], batch, rows[rg], None)
                        yield task, rg, rows[rg], (None if keep is None else np.flatnonzero(keep))
                finally:
                    reader.close()
                continue
            rows_of = _row_group_rows(self, task)
            start = 0
            for rg in task.row_groups:
                n = rows_of[rg]
                keep = self._keep(task, start, None, n, pm)
                yield task, rg, n, (None if keep is None else np.flatnonzero(keep))
                start += n

    def _read_columns(self) -> list[str]:
        extra = [c for c in self._filter_cols if c not in self.columns]
        return list(self.columns) + extra

    def _batches(self, planned: Sequence[FileTask] | None = None) -> Iterator[pa.RecordBatch]:
        planned = self.plan().tasks if planned is None else planned
        read_cols = self._read_columns()
        read_schema = self.schema.select(read_cols)
        out_arrow = self.out_schema.to_arrow()
        tasks = [(t, pm) for t in planned if (pm := self._partition_match(t)) is not False]
        # On a remote storage requests are round trips: the next files are opened and the
        # next row groups fetched in the background, a bounded number ahead (REMOTE_IN_FLIGHT).
        pool = ThreadPoolExecutor(REMOTE_IN_FLIGHT) if self.table.storage.remote and tasks else None
        opening: deque[Future] = deque()
        try:
            for i, (task, pm) in enumerate(tasks):
                if pool is None:
                    reader = self._open(task)
                else:
                    while len(opening) < REMOTE_IN_FLIGHT and i + len(opening) < len(tasks):
                        opening.append(pool.submit(self._open, tasks[i + len(opening)][0]))
                    reader = opening.popleft().result()
                fetching: deque[Future] = deque()
                try:
                    rgs = self._row_groups(reader, task)
                    present = [c for c in read_cols if reader.has_column(c)]
                    for k, rg in enumerate(rgs):
                        self.check_lease()
                        if pool is not None:
                            while len(fetching) < REMOTE_IN_FLIGHT and k + len(fetching) < len(rgs):
                                fetching.append(pool.submit(reader.fetch, rgs[k + len(fetching)], present))
                        batch = self._read(reader, rg, read_cols, read_schema,
                                           fetching.popleft().result() if fetching else None)
                        keep = self._keep(task, int(reader.row_group_starts[rg]), batch, batch.num_rows, pm)
                        if keep is not None:
                            if not keep.any():
                                continue
                            batch = batch.filter(pa.array(keep))
                        if len(read_cols) != len(self.columns):
                            batch = batch.select(list(self.columns))
                        yield batch.cast(out_arrow) if batch.schema != out_arrow else batch
                finally:
                    for f in fetching:  # abandoned: let a running fetch end before the file closes
                        if not f.cancel():
                            f.exception()
                    reader.close()
        finally:
            if pool is not None:
                for f in opening:  # opened ahead, never read: closed
                    if not f.cancel() and f.exception() is None:
                        f.result().close()
                pool.shutdown(wait=True)
            # The read is over (or abandoned): the snapshot need not stay pinned for it.
            self.close()

    def to_batches(self, tasks: Sequence[FileTask] | None = None) -> pa.RecordBatchReader:
        """A ``pyarrow.RecordBatchReader`` over the result (one batch per row group); the
        snapshot stays leased until the last batch is read or the reader is closed.

        ``tasks``: read only these planned tasks (of a plan of this scan's snapshot, columns
        and filter, made by another process: a distributed read's share) instead of planning;
        then this scan takes no lease, and the process that planned keeps the snapshot leased.
        """
        if tasks is None:
            self.plan()
        return pa.RecordBatchReader.from_batches(self.out_schema.to_arrow(), self._batches(tasks))

    def to_arrow(self) -> pa.Table:
        """The whole result as a ``pyarrow.Table``."""
        return pa.Table.from_batches(list(self._batches()), schema=self.out_schema.to_arrow())

    def to_pandas(self) -> "pandas.DataFrame":
        """The whole result as a ``pandas.DataFrame`` (list features as arrays per row).

        Raises:
            MissingDependency: pandas is not installed (``pip install 'samplestore[pandas]'``).
        """
        require_extra("pandas", "Scan.to_pandas()", instead=_ARROW_INSTEAD)  # before reading anything
        return self.to_arrow().to_pandas()

    def to_polars(self) -> "polars.DataFrame":
        """The whole result as a ``polars.DataFrame`` (dense vectors as ``Array`` columns).

        Raises:
            MissingDependency: polars is not installed (``pip install 'samplestore[polars]'``).
        """
        polars = require_extra("polars", "Scan.to_polars()", instead=_ARROW_INSTEAD)
        return polars.from_arrow(self.to_arrow())

    def count(self) -> int:
        """Number of rows the scan returns (from the catalog when there is no filter)."""
        if self.filter is None:
            try:
                return self.plan().num_rows
            finally:
                self.close()
        return sum(b.num_rows for b in self._batches())


def _row_group_rows(scan: Scan, task: FileTask) -> list[int]:
    """Rows of each row group of a planned file (from the file where the catalog lacks them)."""
    if task.row_group_rows is not None:
        return list(task.row_group_rows)
    reader = scan._open(task)
    try:
        return [int(x) for x in reader.row_group_rows]
    finally:
        reader.close()

"""Read a table into a ``ray.data.Dataset``: one read task per file (or part of one),
pruned as a scan prunes, pinned to one snapshot by a lease."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import ray.data
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from ..errors import LeaseExpired
from ..table import FileTask, Table
from ..table.lease import lease_is_live
from ..table.scan import DEFAULT_LEASE_SECONDS
from .tasks import TableRef

__all__ = ["SampleStoreDatasource", "read"]


class SampleStoreDatasource(Datasource):
    """A Ray ``Datasource`` over one snapshot of a table.

    Planning happens here, on the driver, exactly as :meth:`Table.scan` plans: the files of
    the snapshot, pruned by partition values and column statistics against ``filter``, with
    their deleted rows. Each read task opens the table by its
    :class:`~samplestore.ray.tasks.TableRef`, prunes row groups by their statistics, applies
    the deletes and the filter, and yields the selected columns (one block per task).

    The lease: the scan's lease on the snapshot is handed to this object, on the driver,
    whose heartbeat thread renews it every third of ``lease_seconds``; GC keeps the
    snapshot's files meanwhile. It is released by :meth:`close`, or when this object is
    garbage-collected, that is when the ``Dataset`` made from it (whose plan holds it) is
    gone; if the driver dies it lapses after ``lease_seconds``. Copies sent to the tasks hold
    a detached lease that neither renews nor releases: a task first asks the catalog whether
    the lease is live and raises :class:`~samplestore.errors.LeaseExpired` when it is not,
    rather than failing later on a file GC removed.
    """

    def __init__(self, table: Table, columns: Sequence[str] | None = None, filter: pc.Expression | None = None,
                 snapshot: int | str | None = None, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        super().__init__()
        scan = table.scan(columns=columns, filter=filter, snapshot=snapshot, lease_seconds=lease_seconds)
        self.plan = scan.plan()
        self._lease = scan.take_lease()
        self.ref = TableRef.of(table)
        self.columns = list(scan.columns)
        self.filter = filter
        self.snapshot_id = self.plan.snapshot_id
        self.arrow_schema = scan.out_schema.to_arrow()

    def close(self) -> None:
        """Release the snapshot lease now (reading the dataset afterwards may fail with
        :class:`~samplestore.errors.LeaseExpired` once GC has run)."""
        if self._lease is not None:
            self._lease.release()

    def get_name(self) -> str:
        return f"SampleStore({self.ref.table}@{self.snapshot_id})"

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def units(self, parallelism: int) -> list[FileTask]:
        """One unit per file; where there are fewer files than ``parallelism``, large files
        are cut into runs of row groups so that the read still spreads over the cluster."""
        tasks = list(self.plan.tasks)
        if not tasks:
            return []
        cuts = max(1, -(-max(parallelism, 1) // len(tasks)))
        units = []
        for t in tasks:
            groups = t.row_groups
            per = max(1, -(-len(groups) // cuts))
            for i in range(0, len(groups), per):
                units.append(dataclasses.replace(t, row_groups=tuple(groups[i:i + per])))
        return units

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: Any = None) -> list[ReadTask]:
        lease_id = self._lease.lease_id if self._lease is not None else None
        out = []
        for unit in self.units(parallelism):
            rows = None
            if self.filter is None and unit.deleted is None and unit.row_group_rows is not None:
                rows = sum(unit.row_group_rows[rg] for rg in unit.row_groups)
            meta = BlockMetadata(num_rows=rows, size_bytes=None, exec_stats=None, input_files=(unit.path,))
            fn = functools.partial(_read_unit, self.ref, self.columns, self.filter, self.snapshot_id, unit, lease_id)
            out.append(ReadTask(fn, meta, schema=self.arrow_schema, per_task_row_limit=per_task_row_limit))
        return out


def _read_unit(ref: TableRef, columns: list[str], filter: pc.Expression | None, snapshot_id: int, unit: FileTask,
               lease_id: str | None) -> Iterator[pa.Table]:
    """A read task: the unit's selected rows as one Arrow table."""
    table = ref.open_table()
    if lease_id is not None and not lease_is_live(table.catalog, table.name, lease_id):
        raise LeaseExpired(f"the lease pinning snapshot {snapshot_id} of table {table.name!r} for a Ray read lapsed "
                           "(the driver stopped renewing it, or the dataset was garbage-collected), so garbage "
                           "collection may have removed its files; read the table again")
    scan = table.scan(columns=columns, filter=filter, snapshot=snapshot_id)
    batches = list(scan.to_batches(tasks=[unit]))
    yield pa.Table.from_batches(batches, schema=scan.out_schema.to_arrow())


def read(table: Table, columns: Sequence[str] | None = None, filter: pc.Expression | None = None,
         snapshot: int | str | None = None, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
         override_num_blocks: int | None = None) -> "ray.data.Dataset":
    """The rows of one snapshot of ``table`` as a ``ray.data.Dataset``.

    Args:
        table: the table (its store must be reachable from every read task).
        columns: the features to read (all if None), in this order.
        filter: a ``pyarrow.compute`` expression; files and row groups are pruned by
            partition values and statistics, rows filtered exactly (as :meth:`Table.scan`).
        snapshot: a snapshot id or tag name (the current snapshot if None).
        lease_seconds: lifetime of the snapshot's lease without a renewal (see
            :class:`SampleStoreDatasource` for how the lease is held and released).
        override_num_blocks: the number of read tasks to aim at (Ray's choice if None).

    Raises:
        SchemaError: a column or the filter does not fit the table.
        SnapshotNotFound: no such snapshot.
    """
    source = SampleStoreDatasource(table, columns=columns, filter=filter, snapshot=snapshot,
                                   lease_seconds=lease_seconds)
    return ray.data.read_datasource(source, override_num_blocks=override_num_blocks)

"""Compaction and ingest with Ray tasks: the driver plans and commits, tasks rewrite and encode."""

from __future__ import annotations

import time
from typing import Any, Iterator, Mapping, Sequence

import ray

from ..compaction import CompactionGroup, CompactionResult
from ..compaction import compact as compact_table
from ..compaction.compactor import drop_new_files, rewrite_group
from ..compaction.plan import check_layout
from ..progress import Progress
from ..table import Table
from ..table.ingest import guess_format, source_batches
from ..table.lease import Lease
from ..table.writer import DEFAULT_TARGET_FILE_BYTES
from .tasks import TableRef, ensure_ray, entry_from_dict, entry_to_dict, write_files

__all__ = ["compact", "ingest"]


def _rewrite_task(ref: TableRef, group: CompactionGroup, deletes: Mapping[int, Any], target_file_bytes: int,
                  sort_by: Sequence[str] | None, row_group_rows: int, lease_id: str | None,
                  layout: str | None) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    new = rewrite_group(ref.open_table(), group, deletes, target_file_bytes, sort_by, row_group_rows, lease_id,
                        layout=layout)
    return time.perf_counter() - t0, [entry_to_dict(f) for f in new]


def _in_flight(max_in_flight: int | None) -> int:
    return max_in_flight or max(1, int(ray.available_resources().get("CPU", 1)) * 2)


def compact(table: Table, target_file_bytes: int | None = None, sort_by: Sequence[str] | None = None,
            partitions: Any = None, *, layout: str | None = None, address: str | None = None,
            max_in_flight: int | None = None, progress: bool = False, **options: Any) -> CompactionResult:
    """``Table.compact(executor="ray")``: plan on the driver, rewrite the groups as Ray tasks
    in parallel, and commit each group's replace here as it finishes, with the usual conflict
    handling (a group that lost a race is dropped and re-planned; see
    :func:`samplestore.compaction.compact`, which this runs with Ray as its rewriter).

    Args:
        layout: as for :func:`samplestore.compaction.compact` (``"shuffled"``: each task
            writes its group's rows in a random order of its own drawing).
        address: the Ray cluster to use when this process is not connected (None: start a
            local one); the table's store must be reachable from its workers.
        max_in_flight: at most this many group rewrites at a time (default: twice the
            cluster's CPUs).
        progress: show groups done, rows and bytes on stderr.
        options: passed to :func:`samplestore.compaction.compact` (``max_seconds``...).
    """
    check_layout(layout, sort_by, "ray compact")  # before starting or joining a cluster
    ensure_ray(address)
    ref = TableRef.of(table)
    bar = Progress(f"compact {table.name} (ray)", unit=" groups", enabled=progress)
    totals = {"rows": 0, "bytes": 0}

    def rewrite_groups(table: Any, groups: Sequence[CompactionGroup], deletes: Mapping[int, Any],
                       target: int, sort_by: Sequence[str] | None, row_group_rows: int, lease_id: str | None,
                       should_stop: Any = None, layout: str | None = None
                       ) -> Iterator[tuple[CompactionGroup, list[Any], float]]:
        remote = ray.remote(_rewrite_task)
        limit = _in_flight(max_in_flight)
        todo = list(groups)
        pending: dict[Any, CompactionGroup] = {}
        try:
            while todo or pending:
                while todo and len(pending) < limit and not (should_stop is not None and should_stop()):
                    g = todo.pop(0)
                    mine = {fid: deletes[fid] for fid in g.file_ids if fid in deletes}
                    pending[remote.remote(ref, g, mine, target, sort_by, row_group_rows, lease_id, layout)] = g
                if not pending:
                    return
                (done,), _ = ray.wait(list(pending), num_returns=1)
                group = pending.pop(done)
                seconds, entries = ray.get(done)
                new = [entry_from_dict(d) for d in entries]
                totals["rows"] += group.rows
                totals["bytes"] += group.bytes
                bar.extra = f"{totals['rows']:,} rows, {totals['bytes'] / 1e6:,.1f} MB in"
                bar.update(1)
                yield group, new, seconds
        finally:
            _drop_pending(table, pending)

    try:
        return compact_table(table, target_file_bytes or DEFAULT_TARGET_FILE_BYTES, sort_by=sort_by,
                             partitions=partitions, rewrite_groups=rewrite_groups, layout=layout, **options)
    finally:
        bar.close()


def _drop_pending(table: Any, pending: Mapping[Any, Any]) -> None:
    """Tasks whose output will not be committed: their files are deleted once they end (a
    task that fails deletes its own; one that cannot be waited for leaves leftovers GC removes)."""
    for ref in pending:
        try:
            _seconds, entries = ray.get(ref)
        except Exception:  # noqa: BLE001 - a failed task wrote nothing it did not delete
            continue
        drop_new_files(table, [entry_from_dict(d) for d in entries])


def _ingest_task(ref: TableRef, path: str, fmt: str | None, lease_id: str | None,
                 options: dict[str, Any]) -> tuple[int, int, list[dict]]:
    table = ref.open_table()
    meta = table.meta()
    f = fmt or guess_format(path)
    files = write_files(table, source_batches(path, f, meta.schema), lease_id, schema=meta.schema,
                        partition_by=meta.partition_by, where=repr(path), **options)
    return sum(x.num_rows for x in files), sum(x.file_bytes for x in files), [entry_to_dict(x) for x in files]


def ingest(table: Table, paths: Sequence[str], fmt: str | None = None, *, address: str | None = None,
           max_in_flight: int | None = None, progress: bool = False, **options: Any) -> int | None:
    """Ingest Parquet, CSV/TSV or Criteo files into ``table`` with one Ray task per file and
    ONE commit at the end; returns the snapshot id (None when the files hold no rows).

    The files must be readable at the same path from every task (one host, or a shared
    file system). If any task fails, nothing is committed: the files of tasks that finished
    are deleted, and anything left is a leftover GC removes.

    Args:
        fmt: ``parquet``, ``csv``, ``tsv`` or ``criteo`` (guessed from each name if None).
        address, max_in_flight, progress: as for :func:`compact` (progress counts files,
            with rows and bytes written).
        options: ``target_file_bytes``, ``row_group_rows``, ``compression_level``.

    Raises:
        SchemaError: a file does not match the table's schema (file and row named).
    """
    ensure_ray(address)
    ref = TableRef.of(table)
    lease = Lease(table.catalog, table.name, 0)  # its id in every file name: GC leaves them be
    remote = ray.remote(_ingest_task)
    limit = _in_flight(max_in_flight)
    bar = Progress(f"ingest {table.name} (ray)", total=len(paths), unit=" files", enabled=progress)
    todo, pending, done = list(paths), [], []
    rows = size = 0
    committing = False
    try:
        while todo or pending:
            while todo and len(pending) < limit:
                pending.append(remote.remote(ref, todo.pop(0), fmt, lease.lease_id, options))
            (ready,), _ = ray.wait(pending, num_returns=1)
            pending.remove(ready)
            n, b, entries = ray.get(ready)
            done.extend(entries)
            rows, size = rows + n, size + b
            bar.extra = f"{rows:,} rows, {size / 1e6:,.1f} MB written"
            bar.update(1)
        files = [entry_from_dict(d) for d in done]
        if not files:
            return None
        lease.check()  # a lapsed lease no longer kept GC off the files: commit none
        committing = True  # from here a failure may come after the commit landed: delete nothing
        snap = table.catalog.commit(table.name, "append", add=files,
                                    summary={"ingest": len(paths), "executor": "ray"})
        return snap.snapshot_id
    except BaseException:
        for r in pending:
            ray.cancel(r)
        if not committing:
            drop_new_files(table, [entry_from_dict(d) for d in done])
        raise
    finally:
        lease.release()
        bar.close()

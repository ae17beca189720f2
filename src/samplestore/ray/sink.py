"""Write a ``ray.data.Dataset`` into a table as one snapshot."""

from __future__ import annotations

import logging
from typing import Any, Iterable

from ray.data import Datasink
from ray.data.block import BlockAccessor

from ..errors import CatalogError
from ..table import Table
from ..table.lease import Lease
from ..table.writer import DEFAULT_TARGET_FILE_BYTES, TABLE_ROW_GROUP_ROWS
from .tasks import TableRef, entry_from_dict, entry_to_dict, write_files

__all__ = ["SampleStoreDatasink", "write"]

log = logging.getLogger("samplestore.ray")


class SampleStoreDatasink(Datasink):
    """A Ray ``Datasink`` that appends a dataset's rows to a table as ONE snapshot.

    Each write task opens the table by :class:`~samplestore.ray.tasks.TableRef` (root,
    catalog location, storage), validates and encodes its blocks into new data files and
    returns their catalog entries as plain dicts. Nothing is visible until the driver commits
    every entry in :meth:`on_write_complete`, as one ``append`` snapshot.

    Exactly once: Ray passes to :meth:`on_write_complete` the results of successful task
    attempts only, one per write task (they are keyed by task index, and a second result
    of one index, which a re-executed task could give, is dropped with its files). A task
    attempt that fails deletes the files it wrote; one killed outright leaves them behind,
    unreferenced. So does a job that fails (:meth:`on_write_failed` commits nothing). Those
    files carry the id of the writer lease this sink takes on creation, so GC leaves them
    alone while the driver is at work, and removes them as leftovers once the lease is
    released (at the end of the job, failed or not) or lapses (the driver died).

    Args:
        table: the table to append to (its store must be reachable from every task: a
            local folder works on one host; use object storage and a catalog URI on a cluster).
        commit_token: with ``writer_id``, recorded in the snapshot; a job whose token is
            already the writer's last (``table.last_commit_token(writer_id)``) commits
            nothing, so re-running a finished job is a no-op.
        writer_id: the writer the token belongs to; by default ``"ray:TOKEN"``, one per
            token, so a finished job stays a no-op whatever other jobs committed since (one
            writer id shared by several jobs keeps only the last job's token). Without a
            token, ``"ray"``.
        target_file_bytes, row_group_rows, compression_level: as for the table's writers.
        lease_seconds: how long the writer lease lasts without a renewal (the driver renews it
            every third of that while it lives).

    Attributes:
        snapshot_id: the snapshot committed (None before, or when there was nothing to commit).
        skipped: True when the commit token said the job was done already.
    """

    def __init__(self, table: Table, *, commit_token: Any = None, writer_id: str | None = None,
                 target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES, row_group_rows: int = TABLE_ROW_GROUP_ROWS,
                 compression_level: int = 3, lease_seconds: float = 600.0) -> None:
        meta = table.meta()
        self.ref = TableRef.of(table)
        self.schema, self.partition_by = meta.schema, meta.partition_by
        self.commit_token = None if commit_token is None else str(commit_token)
        self.writer_id = writer_id or ("ray" if self.commit_token is None else f"ray:{self.commit_token}")
        self.target_file_bytes, self.row_group_rows = target_file_bytes, row_group_rows
        self.compression_level = compression_level
        self.snapshot_id: int | None = None
        self.skipped = False
        self._table: Table | None = table
        # Taken here, on the driver, before any task runs: every task names its files with it.
        self._lease: Lease | None = Lease(table.catalog, table.name, 0, ttl=lease_seconds)
        self.lease_id = self._lease.lease_id

    def __getstate__(self) -> dict[str, Any]:
        # What reaches the tasks: the table's reference, never the driver's table or lease.
        state = dict(self.__dict__)
        state["_table"], state["_lease"] = None, None
        return state

    def already_done(self) -> bool:
        """Whether the commit token says this job committed already."""
        table = self._driver_table()
        return self.commit_token is not None and table.last_commit_token(self.writer_id) == self.commit_token

    def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
        """In a write task: encode the blocks into new files; return ``{"task", "files"}``."""
        table = self.ref.open_table()
        batches = (BlockAccessor.for_block(b).to_arrow() for b in blocks)
        files = write_files(table, batches, self.lease_id, schema=self.schema, partition_by=self.partition_by,
                            where=f"write task {ctx.task_idx} of table {table.name!r}",
                            target_file_bytes=self.target_file_bytes, row_group_rows=self.row_group_rows,
                            compression_level=self.compression_level)
        return {"task": int(ctx.task_idx), "files": [entry_to_dict(f) for f in files]}

    def on_write_complete(self, write_result: Any) -> None:
        """On the driver: commit every task's files as one snapshot (or nothing: see
        ``commit_token``), then release the writer lease."""
        table = self._driver_table()
        try:
            by_task: dict[int, list[dict[str, Any]]] = {}
            extra: list[dict[str, Any]] = []
            for ret in write_result.write_returns:
                if ret["task"] in by_task:  # a re-executed task: its first result counts
                    extra.extend(ret["files"])
                else:
                    by_task[ret["task"]] = ret["files"]
            files = [entry_from_dict(d) for task in sorted(by_task) for d in by_task[task]]
            if extra:
                log.warning("write to table %r: %d files of re-executed write tasks are not committed", table.name,
                            len(extra))
                self._drop([entry_from_dict(d) for d in extra])
            if self.already_done():
                self.skipped = True
                log.info("write to table %r: commit token %r is committed already; committing nothing", table.name,
                         self.commit_token)
                self._drop(files)
                return
            if not files and self.commit_token is None:
                return
            if self._lease is not None:
                self._lease.check()  # a lapsed lease no longer kept GC off the files: commit none
            snap = table.catalog.commit(table.name, "append", add=files, writer_id=self.writer_id,
                                        commit_token=self.commit_token, summary={"writer": "samplestore.ray.write"})
            self.snapshot_id = snap.snapshot_id
        finally:
            self.close()

    def on_write_failed(self, error: Exception) -> None:
        """On the driver: commit nothing; the files written are leftovers GC removes once
        the writer lease (released here) no longer covers them."""
        log.warning("write to table %r failed, nothing committed: %s", self.ref.table, error)
        self.close()

    def _driver_table(self) -> Table:
        if self._table is None:
            raise CatalogError("a SampleStoreDatasink commits on the driver that made it; this copy is a task's")
        return self._table

    def _drop(self, files: list[Any]) -> None:
        storage = self._driver_table().storage
        for f in files:
            storage.delete(storage.join(self._driver_table().dir, f.path))

    def close(self) -> None:
        """Release the writer lease (done at the end of every job; idempotent)."""
        if self._lease is not None:
            self._lease.release()


def write(ds: Any, table: Table, commit_token: Any = None, *, writer_id: str | None = None,
          ray_remote_args: dict[str, Any] | None = None, concurrency: int | None = None,
          **options: Any) -> int | None:
    """Append the rows of the ``ray.data.Dataset`` ``ds`` to ``table`` as ONE snapshot.

    Write tasks encode blocks into data files on the table's store; the driver commits them
    all at the end (see :class:`SampleStoreDatasink`). If the job fails, nothing is committed
    and the files written are leftovers GC removes.

    Args:
        ds: the dataset; its columns must match the table's schema (validated in the tasks).
        table: the table to append to.
        commit_token: makes a re-run a no-op once a run with this token committed (not
            guarded against two runs with one token at the same moment: run a job once at a time).
        writer_id: the writer the commit token is recorded for (default ``"ray:TOKEN"``).
        ray_remote_args: passed to the write tasks (e.g. ``{"max_retries": 3,
            "retry_exceptions": True}`` to retry a task that raised).
        concurrency: at most this many write tasks at a time.
        options: ``target_file_bytes``, ``row_group_rows``, ``compression_level``,
            ``lease_seconds`` (see :class:`SampleStoreDatasink`).

    Returns:
        The snapshot id committed, or None when there was nothing to commit or the commit
        token says the job was done already.

    Raises:
        SchemaError: rows do not match the schema (through Ray's error, naming the task).
        CatalogError: the commit failed; nothing is committed.
    """
    sink = SampleStoreDatasink(table, commit_token=commit_token, writer_id=writer_id, **options)
    if sink.already_done():
        sink.skipped = True
        sink.close()  # nothing was written
        return None
    try:
        ds.write_datasink(sink, ray_remote_args=ray_remote_args or {}, concurrency=concurrency)
    finally:
        sink.close()  # Ray calls on_write_failed on a best-effort basis only
    return sink.snapshot_id


"""Table writers: batch append (one commit) and the streaming writer for long-running jobs."""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from ..catalog.base import ColumnStats, DataFile
from ..errors import CatalogError, DataQualityError, LeaseExpired
from ..format import FileInfo, FileWriter
from ..storage import Storage
from .expectations import check_commit
from .partition import partition_path, split_by_partition
from .verify import write_location_problem

if TYPE_CHECKING:
    from .table import Table

__all__ = ["StreamingWriter", "DEFAULT_TARGET_FILE_BYTES", "TABLE_ROW_GROUP_ROWS", "data_file_name", "writer_lease_of",
           "new_file_in"]

log = logging.getLogger("samplestore.writer")

DEFAULT_TARGET_FILE_BYTES = 256 << 20
#: Tables use smaller row groups than standalone files: a row group is the unit the training
#: loader shuffles, and a bounded-memory shuffle is only as fine as its units (see
#: docs/ARCHITECTURE.md). 8,192 rows cost ~20% more bytes than 65,536 on Criteo-like data.
TABLE_ROW_GROUP_ROWS = 8_192


def data_file_name(writer_lease: str | None) -> str:
    """A new data file name; it carries the writer's lease id (see :class:`~.lease.Lease`)."""
    tag = f"{writer_lease}-" if writer_lease else ""
    return f"part-{time.strftime('%Y%m%d%H%M%S')}-{tag}{uuid.uuid4().hex[:12]}.ssf"


_LEASE_IN_NAME = re.compile(r"part-\d{14}-([0-9a-f]{32})-")


def writer_lease_of(name: str) -> str | None:
    """The lease id a data or temporary file name carries, if any."""
    m = _LEASE_IN_NAME.search(name)
    return m.group(1) if m else None


_T = TypeVar("_T")


def new_file_in(storage: Storage, folder: str, create: Callable[[], _T]) -> _T:
    """Make ``folder`` in ``storage`` (durably, see :meth:`Storage.make_dirs
    <samplestore.storage.Storage.make_dirs>`), then call ``create`` to make a new file in it;
    returns what ``create`` returns.

    GC removes partition folders it finds empty (with ``rmdir``, see
    :func:`~samplestore.table.verify.remove_empty_partition_folders`), so a folder may
    vanish between being made here and the file being created in it. Then the folder is
    made and the file created once more; a file in it keeps GC away from then on.

    Raises:
        OSError: the folder cannot be made, or the file cannot be created (a second time).
    """
    try:
        storage.make_dirs(folder)
        return create()
    except FileNotFoundError:
        pass  # the folder (or a parent made above) went between makedirs and open: once more
    storage.make_dirs(folder)
    return create()


def data_file_from_info(info: FileInfo, table_dir: str, partition: dict[str, Any]) -> DataFile:
    """The catalog entry of a freshly written file."""
    stats = {
        name: ColumnStats(s.nulls, s.missing, s.values, s.min, s.max, s.stored_bytes, s.extra())
        for name, s in info.columns.items()
    }
    return DataFile(os.path.relpath(info.path, table_dir), dict(partition), info.num_rows, info.file_bytes,
                    info.num_row_groups, stats=stats, row_group_size=info.row_group_size)


class StreamingWriter:
    """Append to a table from a job that runs for days.

    Rows are validated, split by partition and written into one open file per partition.
    A file is closed ("rolled") when it reaches ``target_file_bytes``; all closed files are
    committed together as one snapshot when ``commit_every_rows`` rows or
    ``commit_every_seconds`` seconds (checked at each write) have passed since the last
    commit, on :meth:`commit`, and on :meth:`close`.

    ``commit_token`` (e.g. a Kafka offset) is stored in the snapshot with ``writer_id``; a
    restarted job reads it back with ``table.last_commit_token(writer_id)`` and resumes
    after it, so no row is written twice. If the writer dies, uncommitted files are never
    visible; :meth:`abort` (or leaving the ``with`` block by an exception) deletes them.

    A failed catalog commit (a transient catalog error) loses nothing: it raises
    :class:`~samplestore.CatalogError` and the writer keeps its files and its token, so the
    next commit (:meth:`commit`, a due commit in :meth:`write`, or :meth:`close`) commits
    them exactly once. Until then the writer's lease, whose id the file names carry, keeps
    garbage collection away from them. A failure writing or closing a data file instead
    closes the writer: it cannot tell which rows of that file reached the disk, so it drops
    every row not yet committed, and later calls raise ``ValueError`` saying why; resume
    after ``table.last_commit_token(writer_id)``. So does a failed last commit on leaving
    a ``with`` block, where nothing is left to retry it.

    Every commit is checked against the table's expectations (``Table.set_expectations``):
    a partition that breaks a ``quarantine`` rule is committed held back, a ``warn`` rule is
    logged and recorded in the snapshot's summary (``quality_warnings``), and a ``reject``
    rule raises :class:`~samplestore.DataQualityError`, closing the writer as a failed file
    write does.
    """

    def __init__(
        self,
        table: "Table",
        *,
        commit_every_rows: int | None = 100_000,
        commit_every_seconds: float | None = None,
        target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
        row_group_rows: int = TABLE_ROW_GROUP_ROWS,
        writer_id: str | None = "default",
        operation: str = "stream-append",
        compression_level: int = 3,
        lease_seconds: float = 600.0,
    ) -> None:
        self.table = table
        self.commit_every_rows = commit_every_rows
        self.commit_every_seconds = commit_every_seconds
        self.target_file_bytes = target_file_bytes
        self.row_group_rows = row_group_rows
        self.writer_id = writer_id
        self.operation = operation
        self.compression_level = compression_level
        meta = table.meta()
        self.schema = meta.schema
        self.partition_by = meta.partition_by
        self._open: dict[str, tuple[FileWriter, dict[str, Any]]] = {}
        self._closed_files: list[DataFile] = []
        self._rows_since_commit = 0
        self._last_commit = time.monotonic()
        self._token: str | None = None
        # (last file, token) of each commit attempt that raised since the last commit: an
        # error can come after the catalog committed, so a retry or abort first asks it.
        self._doubtful: list[tuple[str, str | None]] = []
        self._done = False
        self._closed_by: str | None = None  # why a failure closed the writer
        self.snapshots: list[int] = []
        problem = write_location_problem(table)
        if problem is not None:
            raise CatalogError(f"table {table.name!r}: no files are written under {table.store.root!r}: {problem}; "
                               "is the store's root right? (the catalog names tables of another root)")
        from .lease import Lease
        self._lease = Lease(table.catalog, table.name, 0, ttl=lease_seconds)

    def write(self, data: Any, commit_token: Any = None) -> None:
        """Validate and write rows; ``commit_token`` marks the source position they reach.

        Raises:
            SchemaError: ``data`` does not match the schema; none of it was written and the
                writer carries on.
            CatalogError: the commit this write made due failed. The rows of this write are
                held by the writer with every other row not yet committed: do not write
                them again. The next commit retries (see :meth:`commit`).
            OSError: a data file could not be written; the writer is closed and dropped
                every row not yet committed (see the class docs).
            ValueError: the writer is closed.
        """
        self._check_open()
        table = self.schema.conform(data)
        parts = list(split_by_partition(table, self.partition_by))
        try:
            for values, rows in parts:
                key = partition_path(values)
                entry = self._open.get(key)
                if entry is None:
                    entry = (self._new_file(key), values)
                    self._open[key] = entry
                w = entry[0]
                w.write(rows)
                if w.bytes_written >= self.target_file_bytes:
                    self._roll(key)
        except BaseException as exc:
            self._close_on_failure("writing rows to a data file", exc)
            raise
        self._rows_since_commit += table.num_rows
        if commit_token is not None:
            self._token = str(commit_token)
        if self._due():
            self._commit(None, in_write=True)

    def _check_open(self) -> None:
        if self._closed_by is not None:
            raise ValueError(f"this writer is closed: {self._closed_by}")
        if self._done:
            raise ValueError("this writer is closed")
        self._check_lease()

    def _check_lease(self) -> None:
        """A writer whose lease lapsed (stalled past ``lease_seconds``) no longer protects its
        files: GC may take them for a dead writer's leftovers. It closes, dropping what is not
        committed, rather than commit files that may be gone."""
        try:
            self._lease.check()
        except LeaseExpired as exc:
            self._close_on_failure("keeping its lease", exc)
            raise

    def _due(self) -> bool:
        if self.commit_every_rows is not None and self._rows_since_commit >= self.commit_every_rows:
            return True
        return (self.commit_every_seconds is not None
                and time.monotonic() - self._last_commit >= self.commit_every_seconds
                and self._rows_since_commit > 0)

    def _new_file(self, key: str) -> FileWriter:
        storage = self.table.storage
        folder = storage.join(self.table.data_dir, key) if key else self.table.data_dir
        path = storage.join(folder, data_file_name(self._lease.lease_id))
        return new_file_in(storage, folder, lambda: FileWriter(path, self.schema, row_group_rows=self.row_group_rows,
                                                               compression_level=self.compression_level,
                                                               storage=storage))

    def _roll(self, key: str) -> None:
        w, values = self._open.pop(key)
        info = w.close()
        if info.num_rows:
            self._closed_files.append(data_file_from_info(info, self.table.dir, values))
        else:
            self.table.storage.delete(info.path)

    def commit(self, commit_token: Any = None) -> int | None:
        """Close the open files and commit everything written so far as one snapshot.

        Returns the new snapshot id, or None if there was nothing to commit.

        Raises:
            CatalogError: the catalog commit failed. The writer still holds its files and
                token: call ``commit()`` again to retry (they are committed exactly once),
                or :meth:`abort` to drop them. Do not write their rows again.
            OSError: a data file could not be closed; the writer is closed and dropped
                every row not yet committed (see the class docs).
            DataQualityError: the rows broke an expectation whose action is ``reject`` (see
                ``Table.set_expectations``); nothing was committed, and the writer is closed
                and dropped every row not yet committed.
            ValueError: the writer is closed.
        """
        self._check_open()
        return self._commit(commit_token)

    def _commit(self, commit_token: Any, *, in_write: bool = False) -> int | None:
        if commit_token is not None:
            self._token = str(commit_token)
        try:
            for key in list(self._open):
                self._roll(key)
        except BaseException as exc:
            self._close_on_failure("closing a data file", exc)
            raise
        self._check_lease()  # the rolls above may have taken long
        files, token = list(self._closed_files), self._token
        try:
            if self._doubtful:
                self._resolve_doubtful()
                files, token = list(self._closed_files), self._token
            if not files and token is None:
                self._rows_since_commit = 0
                return None
            verdict = check_commit(self.table, files, self.operation)
            snap = self.table.catalog.commit(
                self.table.name, self.operation, add=files, writer_id=self.writer_id, commit_token=token,
                quarantine=verdict.quarantine or None,
                summary={"quality_warnings": verdict.warnings} if verdict.warnings else None)
        except DataQualityError as exc:
            # The rows broke a reject rule: committing them later would be as wrong, and
            # skipping them silently worse, so the writer drops them and closes.
            self._close_on_failure("a data-quality check of its commit", exc)
            raise
        except Exception as exc:
            if files:
                self._doubtful.append((files[-1].path, token))
            raise CatalogError(self._commit_failed(files, token, exc, in_write)) from exc
        except BaseException:  # KeyboardInterrupt, SystemExit: the writer keeps its rows all the same
            if files:
                self._doubtful.append((files[-1].path, token))
            raise
        self._closed_files = []
        self._token = None
        self._rows_since_commit = 0
        self._last_commit = time.monotonic()
        self.snapshots.append(snap.snapshot_id)
        return snap.snapshot_id

    def _commit_failed(self, files: list[DataFile], token: str | None, exc: BaseException, in_write: bool) -> str:
        names = ", ".join(f.path for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        what = f"{sum(f.num_rows for f in files)} rows ({len(files)} files: {names or 'none'})"
        if token is not None:
            what += f" with commit token {token!r}"
        msg = (f"commit of {what} by writer {self.writer_id!r} to table {self.table.name!r} failed: {exc}; "
               f"the writer still holds them: call commit() to retry, or abort() to drop them")
        if in_write:
            msg += "; the rows of this write are held too: do not write them again"
        return msg

    def _resolve_doubtful(self) -> None:
        """Forget what failed commit attempts committed, if one did commit after all.

        An error can reach the writer after the catalog committed (an interrupt between the
        commit and its return; a lost reply from a remote catalog). The files of that commit
        belong to the table then: committing or deleting them again would duplicate or lose
        rows. A commit is atomic, and every attempt holds all files closed before it, so an
        attempt landed if its last file is known to the catalog.
        """
        known = {p for _fid, p, _removed in self.table.catalog.all_file_paths(self.table.name)}
        landed = [token for last, token in self._doubtful if last in known]
        if landed:
            log.warning("a failed commit by writer %r to table %r had committed after all; not committing its "
                        "files again", self.writer_id, self.table.name)
            self._closed_files = [f for f in self._closed_files if f.path not in known]
            if not self._closed_files and self._token == landed[-1]:
                self._token = None
        self._doubtful = []

    def _delete(self, files: list[DataFile]) -> None:
        for f in files:
            self.table.storage.delete(self.table.storage.join(self.table.dir, f.path))

    def close(self) -> int | None:
        """Commit what is left and close; returns the last snapshot id committed (or None).

        Raises:
            CatalogError: the last commit failed; the writer stays open and holds its rows:
                call ``close()`` (or ``commit()``) again to retry, or :meth:`abort`.
            OSError, ValueError: as for :meth:`commit`.
        """
        if self._closed_by is not None:
            self._check_open()
        if self._done:
            return self.snapshots[-1] if self.snapshots else None
        snap = self._commit(None)
        self._done = True
        self._lease.release()
        return snap if snap is not None else (self.snapshots[-1] if self.snapshots else None)

    def abort(self) -> None:
        """Drop everything not yet committed: open files and closed-but-uncommitted files.

        Files of a failed commit that had committed after all are left alone; where the
        catalog cannot tell, they are left to garbage collection, which removes a file only
        when no commit references it.
        """
        if self._doubtful:
            try:
                self._resolve_doubtful()
            except Exception as exc:
                log.warning("writer %r of table %r cannot tell whether a failed commit landed (%s); leaving its "
                            "files to garbage collection", self.writer_id, self.table.name, exc)
                self._closed_files, self._doubtful = [], []
        self._done = True
        for w, _ in self._open.values():
            try:
                w.abort()
            except OSError:
                pass  # a temporary file left behind is a leftover GC removes
        self._open.clear()
        self._delete(self._closed_files)
        self._closed_files = []
        self._token = None
        self._rows_since_commit = 0
        self._lease.release()

    def close_once(self, what: str) -> int | None:
        """Commit and close for a one-shot write (``Table.append``, ingest): a failed commit is
        not retried here, so everything is dropped and the error says nothing was committed.

        Raises:
            CatalogError: the commit failed; nothing of ``what`` is in the table.
        """
        try:
            return self.close()
        except CatalogError as failed:
            self.abort()
            raise CatalogError(f"{what} to table {self.table.name!r} failed and committed nothing: "
                               f"{failed.__cause__ or failed}") from (failed.__cause__ or failed)

    def _close_on_failure(self, what: str, exc: BaseException) -> None:
        """A data file failed: the rows it held are unknown, so drop everything not committed."""
        self.abort()
        resume = (f"; resume after table.last_commit_token({self.writer_id!r})" if self.writer_id is not None else "")
        self._closed_by = (f"{what} failed ({type(exc).__name__}: {exc}), so it dropped every row not yet "
                           f"committed{resume}")
        if hasattr(exc, "add_note"):  # Python 3.11+
            exc.add_note(f"samplestore: the writer of table {self.table.name!r} is closed: {self._closed_by}")

    def __enter__(self) -> "StreamingWriter":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except CatalogError as failed:
            # The with block is over: nothing is left to retry, so drop the rows and say so.
            self.abort()
            resume = (f", resuming after table.last_commit_token({self.writer_id!r})"
                      if self.writer_id is not None else "")
            raise CatalogError(
                f"the last commit of writer {self.writer_id!r} to table {self.table.name!r}, on leaving its with "
                f"block, failed: {failed.__cause__}; the writer is closed and dropped every row not yet committed: "
                f"write them again{resume}") from failed.__cause__
        except BaseException:
            self.abort()
            raise

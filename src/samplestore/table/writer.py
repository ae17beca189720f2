"""Table writers: batch append (one commit) and the streaming writer for long-running jobs."""

from __future__ import annotations

import errno
import os
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..catalog.base import ColumnStats, DataFile
from ..format import FileInfo, FileWriter
from .partition import partition_path, split_by_partition

if TYPE_CHECKING:
    from .table import Table

__all__ = ["StreamingWriter", "DEFAULT_TARGET_FILE_BYTES", "TABLE_ROW_GROUP_ROWS", "data_file_name", "writer_lease_of",
           "make_dirs_durable"]

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


def make_dirs_durable(path: str) -> None:
    """Create the folder ``path`` and any missing parents, and make the new entries durable.

    ``os.makedirs`` leaves a new folder's entry in its parent only in the page cache: after
    a power cut the folder, and every file renamed into it, can be gone although the files
    were fsynced and committed. So the parent of each folder created here is fsynced, at
    every level created (``data/`` for a new ``data/ds=2026-11-01/``; ``data/`` and
    ``data/a=1/`` for a new ``data/a=1/b=2/``). A folder that exists already costs one
    ``stat`` and no fsync.

    Raises:
        OSError: a folder cannot be created, or a parent cannot be fsynced.
    """
    path = os.path.abspath(path)
    created = []
    folder = path
    while not os.path.isdir(folder):
        created.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if not created:
        return
    os.makedirs(path, exist_ok=True)  # another process may be making the same folder
    for folder in reversed(created):
        _fsync_dir(os.path.dirname(folder))


def _fsync_dir(path: str) -> None:
    """fsync a folder, so that entries made in it survive a power cut."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # folders cannot be opened on this platform (Windows): nothing to fsync
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):  # not supported by this file system
            raise
    finally:
        os.close(fd)


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
        meta = table._meta()
        self.schema = meta.schema
        self.partition_by = meta.partition_by
        self._open: dict[str, tuple[FileWriter, dict[str, Any]]] = {}
        self._closed_files: list[DataFile] = []
        self._rows_since_commit = 0
        self._last_commit = time.monotonic()
        self._token: str | None = None
        self._done = False
        self.snapshots: list[int] = []
        from .lease import Lease
        self._lease = Lease(table._catalog, table.name, 0, ttl=lease_seconds)

    def write(self, data: Any, commit_token: Any = None) -> None:
        """Validate and write rows; ``commit_token`` marks the source position they reach."""
        if self._done:
            raise ValueError("this writer is closed")
        table = self.schema.conform(data)
        for values, rows in split_by_partition(table, self.partition_by):
            key = partition_path(values)
            entry = self._open.get(key)
            if entry is None:
                entry = (self._new_file(key), values)
                self._open[key] = entry
            w = entry[0]
            w.write(rows)
            if w.bytes_written >= self.target_file_bytes:
                self._roll(key)
        self._rows_since_commit += table.num_rows
        if commit_token is not None:
            self._token = str(commit_token)
        if self._due():
            self.commit()

    def _due(self) -> bool:
        if self.commit_every_rows is not None and self._rows_since_commit >= self.commit_every_rows:
            return True
        return (self.commit_every_seconds is not None
                and time.monotonic() - self._last_commit >= self.commit_every_seconds
                and self._rows_since_commit > 0)

    def _new_file(self, key: str) -> FileWriter:
        folder = os.path.join(self.table.data_dir, key) if key else self.table.data_dir
        make_dirs_durable(folder)
        path = os.path.join(folder, data_file_name(self._lease.lease_id))
        return FileWriter(path, self.schema, row_group_rows=self.row_group_rows,
                          compression_level=self.compression_level)

    def _roll(self, key: str) -> None:
        w, values = self._open.pop(key)
        info = w.close()
        if info.num_rows:
            self._closed_files.append(data_file_from_info(info, self.table.dir, values))
        else:
            os.unlink(info.path)

    def commit(self, commit_token: Any = None) -> int | None:
        """Close the open files and commit everything written so far as one snapshot.

        Returns the new snapshot id, or None if there was nothing to commit.
        """
        if commit_token is not None:
            self._token = str(commit_token)
        for key in list(self._open):
            self._roll(key)
        if not self._closed_files and self._token is None:
            return None
        files, self._closed_files = self._closed_files, []
        try:
            snap = self.table._catalog.commit(self.table.name, self.operation, add=files,
                                              writer_id=self.writer_id, commit_token=self._token)
        except BaseException:
            self._delete(files)
            raise
        self._token = None
        self._rows_since_commit = 0
        self._last_commit = time.monotonic()
        self.snapshots.append(snap.snapshot_id)
        return snap.snapshot_id

    def _delete(self, files: list[DataFile]) -> None:
        for f in files:
            try:
                os.unlink(os.path.join(self.table.dir, f.path))
            except FileNotFoundError:
                pass

    def close(self) -> int | None:
        """Commit what is left and close; returns the last snapshot id committed (or None)."""
        if self._done:
            return self.snapshots[-1] if self.snapshots else None
        snap = self.commit()
        self._done = True
        self._lease.release()
        return snap if snap is not None else (self.snapshots[-1] if self.snapshots else None)

    def abort(self) -> None:
        """Drop everything not yet committed: open files and closed-but-uncommitted files."""
        self._done = True
        for w, _ in self._open.values():
            w.abort()
        self._open.clear()
        self._delete(self._closed_files)
        self._closed_files = []
        self._lease.release()

    def __enter__(self) -> "StreamingWriter":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


"""The storage interface: every byte of a store's data files, markers and folders goes through it.

A :class:`Storage` is a small interface over ``pyarrow.fs.FileSystem`` semantics: open a file
for ranged reads, write a file and *publish* it, list files with sizes and modification times,
delete, and make or remove folders. Two backends implement it:

- :class:`~samplestore.storage.local.LocalStorage` (the default), the local file system
  through ``os`` calls, with the crash safety of a local disk;
- :class:`~samplestore.storage.arrow.ArrowStorage`, any ``pyarrow.fs.FileSystem`` (local,
  S3, GCS, ABFS, HDFS, in-memory).

Paths are strings in the backend's own namespace: absolute OS paths for
:class:`~samplestore.storage.local.LocalStorage`, ``/``-separated file-system paths (``bucket/key``
on S3) for :class:`~samplestore.storage.arrow.ArrowStorage`; :meth:`Storage.join` builds them.

What "publish" means
--------------------

A file is written through a :class:`PendingFile` from :meth:`Storage.open_write`, and only
:meth:`PendingFile.publish` makes it complete at its final path; :meth:`PendingFile.abort`
(or leaving its ``with`` block unpublished, by an exception or not) removes what was written.

- **Where the backend renames atomically** (:class:`~samplestore.storage.local.LocalStorage`,
  :class:`~samplestore.storage.arrow.ArrowStorage` over a local, in-memory or HDFS file system)
  the bytes go to a temporary name beside the final one, ``.NAME.RANDOM<temp_suffix>``, which
  keeps the final name (and so the writer-lease id a data file name carries, see
  ``table/writer.py``) inside it; publish flushes, renames it to the final name and, on
  :class:`~samplestore.storage.local.LocalStorage`, fsyncs the file before and its folder after
  the rename. Crash safety: a process killed at any moment leaves either nothing or a complete
  file at the final path (and at worst a temporary file, which GC recognises by its suffix);
  with the fsyncs of :class:`~samplestore.storage.local.LocalStorage` that holds across a power
  cut too.
- **Where there is no atomic rename** (object stores: S3, GCS, ABFS) the bytes go straight to
  the final name, which a writer makes unique (data file names carry a timestamp, the writer's
  lease id and a random part); publish closes the output stream, which completes the object
  (on S3, completes the multipart upload). A writer killed before publish leaves no object at
  the final name but, on S3, an unfinished multipart upload: its parts are stored (and billed)
  yet no listing shows them. :meth:`Storage.abort_stale_uploads` finds and aborts such uploads,
  and GC calls it, respecting its grace period and live writers' leases like for any leftover.
  A writer killed between publish and its commit leaves a complete object no commit
  references: nothing reads it (a data file becomes visible to readers only through the
  catalog commit that references it) and GC removes it as it removes any orphan, once its
  writer's lease has lapsed and the grace period has passed. (:meth:`PendingFile.abort` in a
  living process completes the upload and deletes the object: pyarrow cannot abort one.) A
  small file written with :meth:`Storage.write_bytes` (a table marker) is one request and so
  is either there whole or not at all.

Symbolic links: :class:`~samplestore.storage.local.LocalStorage` never follows a link when it
lists, removes a file under a folder (:meth:`Storage.delete_under`) or removes folders
(:meth:`Storage.remove_empty_dirs`), and never leaves the folder it was given. Object stores
have no links; ``pyarrow``'s local file system follows them, so an
:class:`~samplestore.storage.arrow.ArrowStorage` over a local folder offers no such guard.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterator

__all__ = ["Storage", "ReadableFile", "PendingFile", "FileEntry", "IOStats", "REMOVED", "MISSING", "YOUNG", "UNSAFE"]

#: Outcomes of :meth:`Storage.delete_under`.
REMOVED, MISSING, YOUNG, UNSAFE = "removed", "missing", "young", "unsafe"


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One entry of a storage: its path (in the storage's namespace), size in bytes, last
    modification time (seconds since the epoch) and kind (``file``, ``dir``, ``link`` or
    ``other``).

    Where a backend does not know a file's modification time, ``mtime`` is the time it was
    listed: rules that remove only files older than a grace period then never remove it.
    """

    path: str
    size: int
    mtime: float
    kind: str = "file"


class IOStats:
    """What a storage's readers asked of it: files opened, read requests and bytes read.

    On an object store each open is a metadata request (S3: ``HEAD``) and each read a ranged
    ``GET``, so tests and benchmarks assert latency-bound behaviour with these counters. Safe
    to update from several threads (a prefetch keeps requests in flight); a copy sent to
    another process (a DataLoader worker) starts again from zero there.
    """

    __slots__ = ("opens", "requests", "bytes_read", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Set every counter to zero."""
        with self._lock:
            self.opens = self.requests = self.bytes_read = 0

    def count_open(self) -> None:
        """Count one file opened."""
        with self._lock:
            self.opens += 1

    def count_read(self, nbytes: int) -> None:
        """Count one read request that returned ``nbytes`` bytes."""
        with self._lock:
            self.requests += 1
            self.bytes_read += nbytes

    def snapshot(self) -> dict[str, int]:
        """The counters now, as a plain dict."""
        with self._lock:
            return {"opens": self.opens, "requests": self.requests, "bytes_read": self.bytes_read}

    def __getstate__(self) -> dict[str, int]:
        return {"opens": 0, "requests": 0, "bytes_read": 0}  # counters are per process

    def __setstate__(self, state: dict[str, int]) -> None:
        self.__init__()  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"IOStats({self.snapshot()})"


class ReadableFile(ABC):
    """A file open for ranged reads (a ``pread``; an HTTP range request on an object store).

    Attributes:
        path: the file's path, for error messages.
        size: its size in bytes, taken when it was opened.
    """

    path: str
    size: int

    @abstractmethod
    def read_at(self, offset: int, nbytes: int) -> bytes:
        """Up to ``nbytes`` bytes from ``offset``; fewer only where the file ends first."""

    def read_into(self, offset: int, buf: memoryview | bytearray | object) -> int:
        """Fill the writable buffer ``buf`` from ``offset``; returns the bytes read (fewer than
        ``len(buf)`` only where the file ends first). By default a :meth:`read_at` and a copy."""
        view = memoryview(buf).cast("B")  # type: ignore[arg-type]
        data = self.read_at(offset, len(view))
        view[: len(data)] = data
        return len(data)

    def available(self, offset: int, nbytes: int) -> int:
        """How many of ``nbytes`` bytes from ``offset`` the file holds."""
        return max(0, min(nbytes, self.size - offset))

    @abstractmethod
    def close(self) -> None:
        """Release the file (idempotent)."""

    def __enter__(self) -> "ReadableFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PendingFile(ABC):
    """A file being written: invisible, or incomplete, until :meth:`publish` (see the module
    docs for what that means per backend).

    Used as a context manager it is aborted on leaving the block unless it was published:
    ``with storage.open_write(p) as f: f.write(b); f.publish()``.

    Attributes:
        path: the final path the file is published at.
    """

    path: str
    _state = "open"  # then "published" or "aborted"

    @property
    def closed(self) -> bool:
        """Whether the file was published or aborted (file-object protocol: writers such as
        ``pyarrow.parquet.ParquetWriter`` take a pending file as their sink)."""
        return self._state != "open"

    @abstractmethod
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``."""

    def publish(self) -> None:
        """Complete the file at :attr:`path`. On failure the file is aborted and the error
        raised; calling it on a file no longer open raises ``ValueError``."""
        if self._state != "open":
            raise ValueError(f"{self.path!r} is {self._state}, it cannot be published")
        try:
            self._complete()
        except BaseException:
            self.abort()
            raise
        self._state = "published"

    def abort(self) -> None:
        """Drop the file: nothing of it stays at :attr:`path` (idempotent; a no-op once
        published)."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._discard()

    @abstractmethod
    def _complete(self) -> None:
        """The backend's publish: make what was written the file at :attr:`path`."""

    @abstractmethod
    def _discard(self) -> None:
        """The backend's abort: remove what was written."""

    def __enter__(self) -> "PendingFile":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.abort()  # a no-op when published


class Storage(ABC):
    """Where a store's data files, markers and folders live (see the module docs).

    Attributes:
        root: the store's folder in this storage's namespace; tables live under
            ``join(root, "tables", NAME)``.
        remote: whether a read costs a network round trip (an object store): readers then
            fetch a file's tail speculatively and keep several requests in flight.
        coalesce_gap: readers merge the byte ranges they need into one request where the
            gap between two is at most this many bytes (a gap is read and dropped).
        coalesce_overread: the most a read may fetch beyond the bytes it needs, as a share
            of them (0.1: at most 10% more); gaps are merged smallest first within it. None
            bounds the gaps only.
    """

    root: str
    remote = False
    coalesce_gap = 0
    coalesce_overread: float | None = None

    @property
    def stats(self) -> IOStats:
        """Counters of the opens, read requests and bytes read through this storage."""
        st = self.__dict__.get("_stats")
        # setdefault is atomic: two threads asking first get the same counters
        return st if st is not None else self.__dict__.setdefault("_stats", IOStats())

    # -- paths ------------------------------------------------------------------------------
    @abstractmethod
    def join(self, *parts: str) -> str:
        """Join path parts with this storage's separator."""

    # -- reading ----------------------------------------------------------------------------
    @abstractmethod
    def open_read(self, path: str) -> ReadableFile:
        """Open a file for ranged reads.

        Raises:
            FileNotFoundError: there is no file at ``path``.
        """

    def read_bytes(self, path: str) -> bytes:
        """The whole content of a small file (a marker).

        Raises:
            FileNotFoundError: there is no file at ``path``.
        """
        with self.open_read(path) as f:
            return f.read_at(0, f.size)

    # -- writing ----------------------------------------------------------------------------
    @abstractmethod
    def open_write(self, path: str, *, temp_suffix: str = ".tmp") -> PendingFile:
        """Start writing a new file that :meth:`PendingFile.publish` puts at ``path``.

        Args:
            temp_suffix: the suffix of the temporary name, where the backend writes under
                one (garbage collection recognises data files' temporaries by theirs).

        Raises:
            FileNotFoundError: the folder of ``path`` does not exist (on backends with folders).
        """

    def write_bytes(self, path: str, data: bytes, *, temp_suffix: str = ".tmp") -> None:
        """Write a small whole file (a marker) and publish it, replacing any file at ``path``."""
        with self.open_write(path, temp_suffix=temp_suffix) as f:
            f.write(data)
            f.publish()

    # -- listing ----------------------------------------------------------------------------
    @abstractmethod
    def list_files(self, top: str) -> Iterator[FileEntry]:
        """Every regular file under the folder ``top``, at any depth, with its size and
        modification time; nothing when ``top`` does not exist. Never enters a symbolic link."""

    @abstractmethod
    def info(self, path: str) -> FileEntry | None:
        """What is at ``path`` (a link is reported as ``link``, not followed), or None."""

    def exists(self, path: str) -> bool:
        """Whether anything is at ``path``."""
        return self.info(path) is not None

    # -- removing ---------------------------------------------------------------------------
    @abstractmethod
    def delete(self, path: str, *, missing_ok: bool = True) -> bool:
        """Delete the file at ``path``; returns whether there was one to delete.

        This is the one "unlink if it exists" of samplestore: writers drop their own files
        with it (an aborted or conflicting output, an empty rolled file).

        Raises:
            FileNotFoundError: nothing is at ``path`` and not ``missing_ok``.
        """

    @abstractmethod
    def delete_under(self, base: str, rel: str, *, min_age: float | None = None) -> tuple[str, int]:
        """Delete the regular file ``rel`` below the folder ``base``, guarded as garbage
        collection needs: never outside ``base``, never through a symbolic link (where the
        backend has links), never a file modified less than ``min_age`` seconds ago.

        Returns:
            (status, bytes freed), status one of :data:`REMOVED`, :data:`MISSING`,
            :data:`YOUNG` (newer than ``min_age``) or :data:`UNSAFE` (``rel`` leaves
            ``base``, goes through a link, or is not a regular file).
        """

    @abstractmethod
    def delete_tree(self, path: str) -> None:
        """Remove the folder ``path`` and everything in it, as far as possible (errors are
        ignored: what stays is left for the owner to remove)."""

    # -- folders ----------------------------------------------------------------------------
    @abstractmethod
    def make_dirs(self, path: str) -> None:
        """Make the folder ``path`` and its missing parents (durably, where the backend can:
        a file published in it must not vanish with its folder's entry after a power cut).
        A no-op where it exists; on object stores folders are implicit."""

    def abort_stale_uploads(self, prefix: str, older_than_seconds: float, *,
                            keep: Callable[[str], bool] | None = None) -> list[str]:
        """Abort the unfinished uploads (S3 multipart uploads a killed writer left) of files
        under the folder ``prefix`` that were started, and last received a part, more than
        ``older_than_seconds`` ago.

        Args:
            keep: called with an upload's path; where it returns True the upload is left (a
                live writer's work in progress). It is called only once every upload has
                been listed, so a ``keep`` that reads the live writers at its first call sees
                the writer of every upload listed, however recent.

        Returns:
            The paths whose uploads were aborted. Backends without resumable uploads have
            none: by default nothing is done and ``[]`` returned.

        Raises:
            MissingDependency: the backend needs a client library that is not installed to
                list its uploads (S3: boto3, ``pip install 'samplestore[s3]'``).
            OSError: the object store refused or failed a request.
        """
        return []

    @abstractmethod
    def remove_empty_dirs(self, base: str, rel: str = "", *,
                          match: Callable[[str], bool] | None = None) -> list[str]:
        """Remove the empty folders below ``base/rel`` whose names ``match`` accepts (all if
        None), deepest first, so that a folder goes once its last sub-folder went;
        ``base/rel`` itself stays. A folder in which a file is made meanwhile stays (the
        removal fails on a folder that is not empty); nothing is entered through a link.

        Returns:
            The folders removed.
        """


def clean_relative(rel: str, pathmod: Any = os.path) -> list[str] | None:
    """The parts of ``rel`` once normalised (``pathmod``: ``os.path`` or ``posixpath``), or
    None when it is empty, absolute, the base itself, or climbs out with ``..``."""
    norm = pathmod.normpath(rel) if rel else ""
    parts = norm.split(pathmod.sep)
    if not norm or pathmod.isabs(norm) or norm == pathmod.curdir or pathmod.pardir in parts:
        return None
    return parts

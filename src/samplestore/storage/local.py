"""The local file system, through ``os`` calls: the default storage.

Publishing is temporary name, fsync, rename, folder fsync; folders are made durably; nothing
is reached through a symbolic link where garbage collection lists or removes (see
:mod:`samplestore.storage.base`).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
import uuid
from typing import IO, Callable, Iterator, Sequence

from .base import MISSING, REMOVED, UNSAFE, YOUNG, FileEntry, IOStats, PendingFile, ReadableFile, Storage, clean_relative

__all__ = ["LocalStorage", "fsync_dir", "temp_name"]

# Folders are opened with these to walk below a base without following a link.
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def temp_name(path: str, temp_suffix: str) -> str:
    """The temporary name a file is written under before it is renamed to ``path``:
    ``.NAME.RANDOM<temp_suffix>`` beside it. It keeps the final name inside, so the writer
    lease id a data file name carries is in its temporary name too (GC reads it there)."""
    folder, base = os.path.split(path)
    return os.path.join(folder, f".{base}.{uuid.uuid4().hex[:12]}{temp_suffix}")


def fsync_dir(path: str) -> None:
    """fsync a folder, so that entries made or renamed in it survive a power cut.

    Raises:
        OSError: the fsync failed for another reason than the file system not supporting it.
    """
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


class _LocalFile(ReadableFile):
    """A local file open for ``pread``."""

    def __init__(self, path: str, stats: IOStats) -> None:
        self.path = path
        self._stats = stats
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self.size = os.fstat(self._fd).st_size
        except BaseException:
            os.close(self._fd)
            raise

    def read_at(self, offset: int, nbytes: int) -> bytes:
        data = os.pread(self._fd, nbytes, offset)
        self._stats.count_read(len(data))
        return data

    def read_into(self, offset: int, buf: object) -> int:
        got = os.preadv(self._fd, [buf], offset)
        self._stats.count_read(got)
        return got

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _LocalPendingFile(PendingFile):
    """Written under :func:`temp_name`; :meth:`publish` fsyncs, renames and fsyncs the folder."""

    def __init__(self, path: str, temp_suffix: str) -> None:
        self.path = path
        self.temp_path = temp_name(path, temp_suffix)
        self._renamed = False
        self._f: IO[bytes] = open(self.temp_path, "xb")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._f.write(data)

    def _complete(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.temp_path, self.path)
        self._renamed = True
        fsync_dir(os.path.dirname(self.path) or ".")

    def _discard(self) -> None:
        try:
            self._f.close()
        finally:
            # A failure after the rename (the folder's fsync) must not leave the file behind
            # either: the name is this writer's own, unique, and no commit references it yet.
            _unlink(self.path if self._renamed else self.temp_path)


def _unlink(path: str, dir_fd: int | None = None) -> bool:
    try:
        os.unlink(path, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


class LocalStorage(Storage):
    """The local file system (see the module docs); paths are OS paths.

    Args:
        root: the store's folder (made absolute); None for a storage used only to read or
            write single files by path.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = os.path.abspath(os.fspath(root)) if root is not None else ""

    def __repr__(self) -> str:
        return f"LocalStorage({self.root!r})"

    def join(self, *parts: str) -> str:
        return os.path.join(*parts)

    # -- reading / writing ------------------------------------------------------------------
    def open_read(self, path: str) -> ReadableFile:
        f = _LocalFile(os.fspath(path), self.stats)
        self.stats.count_open()
        return f

    def read_bytes(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def open_write(self, path: str, *, temp_suffix: str = ".tmp") -> PendingFile:
        return _LocalPendingFile(os.fspath(path), temp_suffix)

    # -- listing ----------------------------------------------------------------------------
    def list_files(self, top: str) -> Iterator[FileEntry]:
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                it = os.scandir(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with it:
                for e in it:
                    if e.is_symlink():
                        continue  # writers never make links: whatever it points to is not ours
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        st = e.stat(follow_symlinks=False)
                        yield FileEntry(e.path, st.st_size, st.st_mtime)

    def info(self, path: str) -> FileEntry | None:
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        kind = ("link" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode)
                else "file" if stat.S_ISREG(st.st_mode) else "other")
        return FileEntry(os.fspath(path), st.st_size, st.st_mtime, kind)

    # -- removing ---------------------------------------------------------------------------
    def delete(self, path: str, *, missing_ok: bool = True) -> bool:
        if _unlink(path):
            return True
        if not missing_ok:
            raise FileNotFoundError(errno.ENOENT, "no file to delete", path)
        return False

    def delete_under(self, base: str, rel: str, *, min_age: float | None = None) -> tuple[str, int]:
        # Every folder on the way is opened with O_NOFOLLOW and the file is unlinked relative
        # to its folder, so a link swapped in meanwhile cannot redirect the removal.
        parts = clean_relative(rel)
        if parts is None:
            return UNSAFE, 0
        fd = _open_below(base, parts[:-1])
        if isinstance(fd, str):
            return fd, 0
        try:
            try:
                st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return MISSING, 0
            if not stat.S_ISREG(st.st_mode):
                return UNSAFE, 0
            if min_age is not None and time.time() - st.st_mtime < min_age:
                return YOUNG, 0
            if not _unlink(parts[-1], dir_fd=fd):
                return MISSING, 0
            return REMOVED, st.st_size
        finally:
            os.close(fd)

    def delete_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)  # refuses a link at the top; never follows one below

    # -- folders ----------------------------------------------------------------------------
    def make_dirs(self, path: str) -> None:
        """``os.makedirs`` leaves a new folder's entry in its parent only in the page cache:
        after a power cut the folder, and every file renamed into it, can be gone although
        the files were fsynced and committed. So the parent of each folder created here is
        fsynced, at every level created (``data/`` for a new ``data/ds=2026-11-01/``;
        ``data/`` and ``data/a=1/`` for a new ``data/a=1/b=2/``). A folder that exists
        already costs one ``stat`` and no fsync.

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
            fsync_dir(os.path.dirname(folder))

    def remove_empty_dirs(self, base: str, rel: str = "", *,
                          match: Callable[[str], bool] | None = None) -> list[str]:
        # Every folder is opened with O_NOFOLLOW relative to its parent, so nothing behind a
        # link is entered or removed and nothing outside ``base`` is touched; ``rmdir`` fails
        # on a folder that is not empty, so a writer making a file in one at this moment
        # either keeps it or finds it gone and makes it again (table/writer.py new_file_in).
        if os.rmdir not in os.supports_dir_fd or os.scandir not in os.supports_fd:
            return []  # no way to remove relative to an opened folder here: leave them
        parts = clean_relative(rel) if rel else []
        if parts is None:
            return []
        removed: list[str] = []

        def empty_after_pruning(fd: int, path: str) -> bool:
            empty = True
            with os.scandir(fd) as it:
                entries = list(it)
            for e in entries:
                if not (e.is_dir(follow_symlinks=False) and (match is None or match(e.name))):
                    empty = False
                    continue
                sub = _open_dir_quiet(e.name, fd)
                if sub is None:
                    empty = False
                    continue
                try:
                    prune = empty_after_pruning(sub, os.path.join(path, e.name))
                finally:
                    os.close(sub)
                if prune:
                    try:
                        os.rmdir(e.name, dir_fd=fd)
                        removed.append(os.path.join(path, e.name))
                        continue
                    except FileNotFoundError:
                        continue  # removed meanwhile (another GC)
                    except OSError:
                        pass  # a writer made a file or folder in it meanwhile (not empty), or it is in use
                empty = False
            return empty

        fd = _open_below(base, parts)
        if isinstance(fd, str):
            return []
        try:
            empty_after_pruning(fd, os.path.join(base, *parts))
        finally:
            os.close(fd)
        return removed


def _open_dir(name: str, parent: int | None) -> int | None:
    """Open a folder without following a link: its fd, or None when it is a link or not a
    folder.

    Raises:
        FileNotFoundError: nothing is there.
    """
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return None
        raise


def _open_below(base: str, parts: Sequence[str]) -> int | str:
    """Open the folder ``base``, then each of ``parts`` below it, never following a link:
    the fd of the last one, or :data:`MISSING` / :data:`UNSAFE` (a link or not a folder on
    the way)."""
    fd: int | None = None
    try:
        for name in (base, *parts):
            try:
                sub = _open_dir(name, fd)
            except FileNotFoundError:
                return MISSING
            if sub is None:
                return UNSAFE
            if fd is not None:
                os.close(fd)
            fd = sub
        opened, fd = fd, None
        return opened
    finally:
        if fd is not None:
            os.close(fd)


def _open_dir_quiet(name: str, parent: int | None) -> int | None:
    """:func:`_open_dir`, with None also where nothing is there."""
    try:
        return _open_dir(name, parent)
    except FileNotFoundError:
        return None

"""A size-bounded local cache of the byte ranges read from another storage (multi-epoch
training over an object store): the user's choice, off by default.

Data files are immutable and never reuse a name (a timestamp, the writer's lease id and a
random part), so a range of one, once fetched, is valid for as long as the file exists: the
cache keys ranges by (path, size, offset, length) and never revalidates. Files a reader opens
through :class:`CachedStorage` remember their size in the cache too, so a later open costs
no request either; the remote file is opened only on the first miss. Entries are plain files
in one folder, written under a temporary name and renamed (several DataLoader workers share
the folder safely); when the folder holds more than ``max_bytes`` the least recently used
entries go. Everything else (writing, listing, deleting) goes to the wrapped storage as it is.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from typing import Any, Callable, Iterator

from .base import FileEntry, IOStats, PendingFile, ReadableFile, Storage

__all__ = ["CachedStorage"]


def _key(*parts: object) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:40]


class _CachedFile(ReadableFile):
    """Ranges from the cache, else from the wrapped storage (opened at the first miss)."""

    def __init__(self, cache: "CachedStorage", path: str, size: int, remote: ReadableFile | None) -> None:
        self._cache = cache
        self.path = path
        self.size = size
        self._remote = remote
        self._lock = threading.Lock()

    def _remote_file(self) -> ReadableFile:
        with self._lock:
            if self._remote is None:
                self._remote = self._cache.inner.open_read(self.path)
            return self._remote

    def read_at(self, offset: int, nbytes: int) -> bytes:
        nbytes = self.available(offset, nbytes)
        if not nbytes:
            return b""
        name = _key(self.path, self.size, offset, nbytes)
        data = self._cache.get(name)
        if data is None or len(data) != nbytes:
            data = self._remote_file().read_at(offset, nbytes)
            self._cache.put(name, data)
        return data

    def close(self) -> None:
        with self._lock:
            if self._remote is not None:
                self._remote.close()
                self._remote = None


class CachedStorage(Storage):
    """``inner`` with its reads cached in the local folder ``folder``, at most ``max_bytes``
    (see the module docs). :attr:`stats` are the wrapped storage's: what reached it.

    Attributes:
        hits / misses: ranges served from the cache / fetched (this process).
    """

    def __init__(self, inner: Storage, folder: str | os.PathLike[str], max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"a read cache holds a positive number of bytes, found max_bytes={max_bytes}")
        self.inner = inner
        self.folder = os.path.abspath(os.fspath(folder))
        self.max_bytes = int(max_bytes)
        self.root = inner.root
        self.remote = inner.remote
        self.coalesce_gap = inner.coalesce_gap
        self.coalesce_overread = inner.coalesce_overread
        os.makedirs(self.folder, exist_ok=True)
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.hits = self.misses = 0
        self._added = 0  # bytes put since the folder was last measured
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"inner": self.inner, "folder": self.folder, "max_bytes": self.max_bytes, "root": self.root,
                "remote": self.remote, "coalesce_gap": self.coalesce_gap}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_counters()

    def __repr__(self) -> str:
        return f"CachedStorage({self.inner!r}, {self.folder!r}, max_bytes={self.max_bytes})"

    @property
    def stats(self) -> IOStats:
        return self.inner.stats

    # -- the cache --------------------------------------------------------------------------
    def get(self, name: str) -> bytes | None:
        """A cached entry, or None (counted as a miss)."""
        path = os.path.join(self.folder, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
            os.utime(path)  # most recently used: evicted last
        except FileNotFoundError:
            with self._lock:
                self.misses += 1
            return None
        with self._lock:
            self.hits += 1
        return data

    def put(self, name: str, data: bytes) -> None:
        """Store an entry (temporary name, then rename: readers never see half of one)."""
        if len(data) > self.max_bytes:
            return
        path = os.path.join(self.folder, name)
        tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        with self._lock:
            self._added += len(data)
            # Measure the folder (shared with other processes) once a tenth of it was added.
            check = self._added >= self.max_bytes // 10
            if check:
                self._added = 0
        if check:
            self.evict()

    def evict(self) -> int:
        """Remove the least recently used entries until the folder holds at most
        ``max_bytes``; returns the bytes it holds then."""
        entries = []
        with os.scandir(self.folder) as it:
            for e in it:
                if e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    entries.append((st.st_mtime, st.st_size, e.path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass  # another process evicted it
            total -= size
        return total

    # -- reading ----------------------------------------------------------------------------
    def open_read(self, path: str) -> ReadableFile:
        size_name = _key("size", path)
        known = self.get(size_name)
        if known is not None:
            return _CachedFile(self, path, int(known), None)
        remote = self.inner.open_read(path)
        self.put(size_name, str(remote.size).encode())
        return _CachedFile(self, path, remote.size, remote)

    # -- everything else goes to the wrapped storage ------------------------------------------
    def join(self, *parts: str) -> str:
        return self.inner.join(*parts)

    def read_bytes(self, path: str) -> bytes:
        return self.inner.read_bytes(path)  # markers change: never cached

    def open_write(self, path: str, *, temp_suffix: str = ".tmp") -> PendingFile:
        return self.inner.open_write(path, temp_suffix=temp_suffix)

    def list_files(self, top: str) -> Iterator[FileEntry]:
        return self.inner.list_files(top)

    def info(self, path: str) -> FileEntry | None:
        return self.inner.info(path)

    def delete(self, path: str, *, missing_ok: bool = True) -> bool:
        return self.inner.delete(path, missing_ok=missing_ok)

    def delete_under(self, base: str, rel: str, *, min_age: float | None = None) -> tuple[str, int]:
        return self.inner.delete_under(base, rel, min_age=min_age)

    def delete_tree(self, path: str) -> None:
        self.inner.delete_tree(path)

    def abort_stale_uploads(self, prefix: str, older_than_seconds: float, *,
                            keep: Callable[[str], bool] | None = None) -> list[str]:
        return self.inner.abort_stale_uploads(prefix, older_than_seconds, keep=keep)

    def make_dirs(self, path: str) -> None:
        self.inner.make_dirs(path)

    def remove_empty_dirs(self, base: str, rel: str = "", *,
                          match: Callable[[str], bool] | None = None) -> list[str]:
        return self.inner.remove_empty_dirs(base, rel, match=match)

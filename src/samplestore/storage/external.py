"""Files outside any store that a command reads or writes: ingest sources and export outputs.

They are named as store roots are, by a local path or a URI pyarrow supports
(``s3://bucket/key.parquet?endpoint_override=host:port&scheme=http``, ``gs://``...), so that
``samplestore ingest`` and ``samplestore export`` take the same locations as every other
command. Sources open as pyarrow files (seekable; a read is a ranged request on an object
store); an output is a :class:`~samplestore.storage.base.PendingFile` written under a
temporary name beside its target and moved onto it only once published, so a failed or
interrupted export leaves no partial file at the target (on an object store the move is a
server-side copy and delete; a writer killed mid-upload leaves at most an unfinished upload or
a ``.NAME.RANDOM.tmp`` object beside the target, never a partial target).
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

import pyarrow.fs as pafs

from .arrow import ArrowStorage
from .base import PendingFile

__all__ = ["location_path", "open_input", "input_size", "open_output"]


def _remote(location: str) -> bool:
    from . import is_remote_uri  # the package imports this module: resolved at call time

    return is_remote_uri(location)


def location_path(location: str | os.PathLike[str]) -> str:
    """``location`` without a URI's query string (where its options are): what its name and
    extension are read from."""
    location = os.fspath(location)
    return location.split("?", 1)[0] if _remote(location) else location


def _arrow_location(location: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    """The pyarrow file system holding ``location`` and its path there.

    Raises:
        UnsupportedStorage: pyarrow cannot open the URI.
    """
    location = os.fspath(location)
    if _remote(location):
        from . import storage_for

        st = storage_for(location)
        return st.fs, st.root  # type: ignore[attr-defined]  # an ArrowStorage for any remote URI
    path = location[len("file://"):] if location.startswith("file://") else location
    return pafs.LocalFileSystem(), os.path.abspath(path)


def input_size(location: str | os.PathLike[str]) -> int | None:
    """The size in bytes of the file at ``location``; None when there is no file there (a
    folder counts as none).

    Raises:
        UnsupportedStorage: pyarrow cannot open the URI.
    """
    fs, path = _arrow_location(location)
    info = fs.get_file_info(path)
    return int(info.size or 0) if info.type == pafs.FileType.File else None


def open_input(location: str | os.PathLike[str]) -> Any:
    """The file at ``location`` open for reading: a seekable ``pyarrow.NativeFile`` (a context
    manager; ``pyarrow.parquet`` and ``pyarrow.csv`` read it as they read a path).

    Raises:
        FileNotFoundError: there is no file at ``location``.
        UnsupportedStorage: pyarrow cannot open the URI.
    """
    fs, path = _arrow_location(location)
    return fs.open_input_file(path)


def open_output(location: str, default_name: str) -> tuple[PendingFile, str]:
    """Start writing the file a remote URI ``location`` names; where it names a folder (it
    ends with ``/``, or a folder or object-store prefix is there) the file is
    ``default_name`` in it. Published, the file appears whole at its path at once.

    Returns:
        The pending file and its URI (without the query string), for messages.

    Raises:
        UnsupportedStorage: pyarrow cannot open the URI, or ``location`` is a local path
            (a local output is the caller's to handle, as for any local file).
    """
    from . import storage_for

    if not _remote(location):
        from ..errors import UnsupportedStorage

        raise UnsupportedStorage(f"open_output takes a remote URI (s3://bucket/key...), not the local path {location!r}")
    st = storage_for(location)
    fs, path = st.fs, st.root  # type: ignore[attr-defined]
    shown = location_path(location)
    info = fs.get_file_info(path)
    if shown.endswith("/") or info.type == pafs.FileType.Directory:
        path = posixpath.join(path, default_name)
        shown = posixpath.join(shown, default_name)
    target = ArrowStorage(fs, atomic_rename=True)  # a temporary name, moved onto the target when whole
    target.make_dirs(posixpath.dirname(path))
    return target.open_write(path), shown

"""Storage: the one seam through which a store's bytes are read and written.

:class:`Storage` (``base.py``) is the interface; :class:`LocalStorage` (``local.py``) the
default, the local file system; :class:`ArrowStorage` (``arrow.py``) any
``pyarrow.fs.FileSystem``. :func:`storage_for` picks one for a store location.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import UnsupportedStorage
from .arrow import ArrowStorage
from .base import MISSING, REMOVED, UNSAFE, YOUNG, FileEntry, PendingFile, ReadableFile, Storage
from .local import LocalStorage

__all__ = ["Storage", "ReadableFile", "PendingFile", "FileEntry", "LocalStorage", "ArrowStorage", "storage_for",
           "REMOVED", "MISSING", "YOUNG", "UNSAFE"]

_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def storage_for(target: Any) -> Storage:
    """The storage for a store location.

    Args:
        target: a :class:`Storage` (returned as it is); a ``pyarrow.fs.FileSystem`` (an
            :class:`ArrowStorage` over its top); a local path or a ``file://`` URI (a
            :class:`LocalStorage` rooted there).

    Raises:
        UnsupportedStorage: a URI of a scheme with no storage backend yet (``s3://``...).
    """
    if isinstance(target, Storage):
        return target
    import pyarrow.fs as pafs

    if isinstance(target, pafs.FileSystem):
        return ArrowStorage(target)
    path = os.fspath(target)
    m = _URI.match(path)
    if m is None:
        return LocalStorage(path)
    if m.group(1).lower() == "file":
        return LocalStorage(path[len("file://"):])
    raise UnsupportedStorage(f"no storage backend for {m.group(1)!r} URIs (in {path!r}); samplestore stores live on "
                             "a local path or file:// URI, or pass storage=ArrowStorage(pyarrow_filesystem, root)")

"""Storage: the one seam through which a store's bytes are read and written.

:class:`Storage` (``base.py``) is the interface; :class:`LocalStorage` (``local.py``) the
default, the local file system; :class:`ArrowStorage` (``arrow.py``) any
``pyarrow.fs.FileSystem``; :class:`CachedStorage` (``cache.py``) a size-bounded local cache of
the ranges read from another. :func:`storage_for` picks one for a store location. ``external.py`` opens files outside
any store (ingest sources, export outputs) named by a local path or a URI alike.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import UnsupportedStorage
from .arrow import ArrowStorage
from .cache import CachedStorage
from .base import MISSING, REMOVED, UNSAFE, YOUNG, FileEntry, IOStats, PendingFile, ReadableFile, Storage
from .local import LocalStorage
from .external import input_size, location_path, open_input, open_output

__all__ = ["Storage", "ReadableFile", "PendingFile", "FileEntry", "IOStats", "LocalStorage", "ArrowStorage", "CachedStorage",
           "storage_for", "is_remote_uri", "redact", "REMOVED", "MISSING", "YOUNG", "UNSAFE",
           "open_input", "input_size", "open_output", "location_path"]

_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# user:secret@ in a URI (pyarrow accepts s3://KEY:SECRET@bucket/...): never shown in a message.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")
# ...and credentials in its query string (?access_key=...&secret_key=...).
_SECRET_PARAMS = re.compile(r"([?&](?:access_key|secret_key|session_token|sas_token|account_key)=)[^&]*", re.I)

#: Schemes whose file system samplestore builds itself when ``storage_options`` are given
#: (the options are that class's keyword arguments); without options any URI
#: ``pyarrow.fs.FileSystem.from_uri`` takes works, its query string carrying the options.
_FILESYSTEMS = {"s3": "S3FileSystem", "gs": "GcsFileSystem", "gcs": "GcsFileSystem"}


def redact(uri: str) -> str:
    """``uri`` with any ``user:secret@`` part and secret query parameters masked, for
    messages and logs."""
    return _SECRET_PARAMS.sub(r"\1***", _USERINFO.sub(r"\1***@", uri))


def is_remote_uri(target: Any) -> bool:
    """Whether ``target`` is a URI of a scheme other than ``file://`` (a store not on a local path)."""
    if not isinstance(target, str):
        return False
    m = _URI.match(target)
    return m is not None and m.group(1).lower() != "file"


def storage_for(target: Any, options: dict[str, Any] | None = None) -> Storage:
    """The storage for a store location.

    Args:
        target: a :class:`Storage` (returned as it is); a ``pyarrow.fs.FileSystem`` (an
            :class:`ArrowStorage` over its top); a local path or a ``file://`` URI (a
            :class:`LocalStorage` rooted there); any other URI pyarrow supports
            (``s3://bucket/prefix``, ``gs://``, ``abfs://``, ``hdfs://``...: an
            :class:`ArrowStorage` rooted at its path). Credentials come from where pyarrow
            looks for them (environment, AWS config files, instance metadata) or from the
            URI's query string (``?endpoint_override=host:port&scheme=http``).
        options: keyword arguments of the file system for ``s3://`` (``pyarrow.fs.S3FileSystem``:
            ``endpoint_override``, ``region``, ``scheme``...) and ``gs://``
            (``pyarrow.fs.GcsFileSystem``). Never stored anywhere, never shown.

    Raises:
        UnsupportedStorage: pyarrow has no file system for the URI, cannot open it, or
            ``options`` are given for a target they do not apply to.
    """
    if isinstance(target, Storage):
        if options:
            raise UnsupportedStorage("storage_options apply to a URI; a Storage object is used as it is")
        return target
    import pyarrow.fs as pafs

    if isinstance(target, pafs.FileSystem):
        if options:
            raise UnsupportedStorage("storage_options apply to a URI; a pyarrow FileSystem is used as it is")
        return ArrowStorage(target)
    path = os.fspath(target)
    m = _URI.match(path)
    scheme = m.group(1).lower() if m else ""
    if scheme in ("", "file"):
        if options:
            raise UnsupportedStorage(f"storage_options apply to a remote URI (s3://, gs://...), not to the local path "
                                     f"{path!r}")
        return LocalStorage(path[len("file://"):] if scheme else path)
    fs, root = _filesystem(path, scheme, options)
    return ArrowStorage(fs, root)


def _filesystem(uri: str, scheme: str, options: dict[str, Any] | None) -> tuple[Any, str]:
    import pyarrow as pa
    import pyarrow.fs as pafs

    shown = redact(uri)
    cls = _FILESYSTEMS.get(scheme)
    rest = uri[len(scheme) + 3:]
    if options and cls is None:
        raise UnsupportedStorage(f"storage_options are taken for {sorted(_FILESYSTEMS)} URIs, not {scheme}:// "
                                 f"(in {shown!r}); put the options in the URI's query string instead, or pass "
                                 "storage=ArrowStorage(pyarrow_filesystem, root)")
    if options and ("?" in rest or "@" in rest.split("/", 1)[0]):
        raise UnsupportedStorage(f"{shown!r}: give options either in storage_options or in the URI, not both")
    try:
        if options:
            return getattr(pafs, cls)(**options), rest.rstrip("/")
        fs, root = pafs.FileSystem.from_uri(uri)
        return fs, root
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, TypeError, ValueError) as exc:
        msg = str(exc).replace(uri, shown)
        raise UnsupportedStorage(f"cannot open the store location {shown!r} with pyarrow.fs ({type(exc).__name__}: "
                                 f"{msg}); expected a local path or a URI pyarrow supports (s3://bucket/prefix, "
                                 "gs://, abfs://, hdfs://, file://) with valid storage_options") from exc

"""Any ``pyarrow.fs.FileSystem`` as a storage: local, S3, GCS, ABFS, HDFS, in-memory.

Where the file system renames atomically (local, HDFS, pyarrow's in-memory mock) a file is
written under a temporary name and moved to its final name on publish; elsewhere it is
written under its final, unique name and the output stream's close completes it (see
:mod:`samplestore.storage.base` for what each gives after a crash). pyarrow's output streams
do not fsync, so on a local disk this gives atomic visibility across a process crash but not
durability across a power cut: use :class:`~samplestore.storage.local.LocalStorage` there.

pyarrow can neither list nor abort an S3 multipart upload, which a writer killed mid-upload
leaves behind (stored and billed, invisible to listings): :meth:`ArrowStorage.abort_stale_uploads`
does it with boto3 (the ``[s3]`` extra), configured from the ``S3FileSystem``'s own settings.

pyarrow has no "remove this folder if it is empty": ``delete_dir`` removes a folder with
everything in it, and would take a file a writer made in it a moment before with it. So
:meth:`ArrowStorage.remove_empty_dirs` removes nothing (object stores have no real folders;
on a file system the empty folders stay).
"""

from __future__ import annotations

import posixpath
import time
import uuid
from typing import Any, Callable, Iterator

import pyarrow.fs as pafs

from .base import MISSING, REMOVED, UNSAFE, YOUNG, FileEntry, IOStats, PendingFile, ReadableFile, Storage, clean_relative

__all__ = ["ArrowStorage"]

#: File systems (``type_name``) whose ``move`` of a file is an atomic rename.
_RENAMING = frozenset({"local", "mock", "hdfs"})
#: Object stores (``type_name``): no real folders, a key's "folders" exist while a key is in them.
_OBJECT_STORES = frozenset({"s3", "gcs", "abfs"})
#: File systems (``type_name``) on the local machine: a read there is no network round trip.
_LOCAL = frozenset({"local", "mock"})
#: Output buffer: the format writer makes many small writes (chunk and stream heads).
_BUFFER_BYTES = 1 << 20
#: On an object store two needed byte ranges closer than this are fetched as one request:
#: reading 256 KiB more costs about what one more round trip costs (a few ms at ~100 MB/s).
REMOTE_COALESCE_GAP = 256 << 10
#: ... and fetch at most this share more than the bytes needed (a few columns of many, spread
#: across a row group, are then fetched in several requests rather than with the columns
#: between them).
REMOTE_COALESCE_OVERREAD = 0.1


def _base_fs(fs: pafs.FileSystem) -> pafs.FileSystem:
    while isinstance(fs, pafs.SubTreeFileSystem):
        fs = fs.base_fs
    return fs


def _base_path(fs: pafs.FileSystem, path: str) -> str:
    """``path`` of ``fs`` as a path of :func:`_base_fs` (through any ``SubTreeFileSystem``)."""
    while isinstance(fs, pafs.SubTreeFileSystem):
        path = posixpath.join(fs.base_path, path)
        fs = fs.base_fs
    return path


def _s3_client(fs: pafs.S3FileSystem) -> Any:
    """A boto3 S3 client reaching what ``fs`` reaches, with its credentials.

    pyarrow shows only ``region`` as a property; its pickling protocol (``__reduce__``) gives
    the constructor's arguments, whether ``fs`` came from keyword arguments or a URI's query
    string. Keys left unset there come from boto3's own chain (environment, config files),
    as they do for pyarrow. Nothing of it is logged.
    """
    from ..extras import require_extra

    boto3 = require_extra("boto3", "aborting the unfinished S3 uploads of killed writers", extra="s3",
                          instead="or let a bucket lifecycle rule AbortIncompleteMultipartUpload do it")
    from botocore import UNSIGNED
    from botocore.config import Config

    opts = fs.__reduce__()[1][0]
    config: dict[str, Any] = {}
    endpoint = opts.get("endpoint_override") or None
    if endpoint is not None:
        if "://" not in endpoint:
            endpoint = f"{opts.get('scheme') or 'https'}://{endpoint}"
        # pyarrow addresses buckets by path on an endpoint of one's own, as boto3 must then.
        config["s3"] = {"addressing_style": "virtual" if opts.get("force_virtual_addressing") else "path"}
    for ours, theirs in (("connect_timeout", "connect_timeout"), ("request_timeout", "read_timeout")):
        if (opts.get(ours) or -1) > 0:
            config[theirs] = opts[ours]
    if opts.get("anonymous"):
        config["signature_version"] = UNSIGNED
    keys = {name: opts[ours] for ours, name in (("access_key", "aws_access_key_id"),
                                                ("secret_key", "aws_secret_access_key"),
                                                ("session_token", "aws_session_token")) if opts.get(ours)}
    return boto3.client("s3", endpoint_url=endpoint, region_name=opts.get("region") or None,
                        verify=opts.get("tls_ca_file_path") or None, config=Config(**config), **keys)


def _last_part_time(s3: Any, bucket: str, upload: dict[str, Any]) -> float:
    """When the upload last received a part (seconds since the epoch; 0 with no part): one
    started long ago may still be at work on a big file."""
    last = 0.0
    pages = s3.get_paginator("list_parts").paginate(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in pages:
        for part in page.get("Parts", []):
            last = max(last, part["LastModified"].timestamp())
    return last


class _ArrowFile(ReadableFile):
    """A pyarrow ``RandomAccessFile`` (``read_at`` is a ranged request on object stores)."""

    def __init__(self, path: str, f: Any, stats: IOStats) -> None:
        self.path = path
        self._f = f
        self._stats = stats
        try:
            self.size = f.size()
        except BaseException:
            f.close()
            raise

    def read_at(self, offset: int, nbytes: int) -> bytes:
        nbytes = self.available(offset, nbytes)
        if not nbytes:
            return b""
        data = self._f.read_at(nbytes, offset)
        self._stats.count_read(len(data))
        return data

    def close(self) -> None:
        self._f.close()


class _ArrowPendingFile(PendingFile):
    """Written under a temporary name and moved on publish, or under the final name."""

    def __init__(self, fs: pafs.FileSystem, path: str, temp_suffix: str, rename: bool) -> None:
        self._fs = fs
        self.path = path
        if rename:
            folder, base = posixpath.split(path)
            self.temp_path = posixpath.join(folder, f".{base}.{uuid.uuid4().hex[:12]}{temp_suffix}")
        else:
            self.temp_path = path  # no rename: the final name is written, and completed by close
        self._stream = fs.open_output_stream(self.temp_path, buffer_size=_BUFFER_BYTES)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._stream.write(data)

    def _complete(self) -> None:
        self._stream.close()  # on S3: completes the multipart upload
        if self.temp_path != self.path:
            self._fs.move(self.temp_path, self.path)

    def _discard(self) -> None:
        try:
            self._stream.close()
        except OSError:
            pass  # the stream broke: whatever reached the store is deleted below
        finally:
            try:
                self._fs.delete_file(self.temp_path)
            except FileNotFoundError:
                pass


class ArrowStorage(Storage):
    """A ``pyarrow.fs.FileSystem`` as a storage (see the module docs); paths are the file
    system's (``/``-separated, ``bucket/key`` on S3).

    Args:
        fs: the file system, e.g. ``pyarrow.fs.SubTreeFileSystem(folder, LocalFileSystem())``
            or ``pyarrow.fs.S3FileSystem(...)``.
        root: the store's folder in ``fs`` (``""``: its top).
        atomic_rename: publish by renaming a temporary file (True) or by writing the final
            name (False); None decides by the file system (renames on local, HDFS and
            in-memory file systems, not on object stores).
        remote: whether a read is a network round trip (see :attr:`Storage.remote`); None
            decides by the file system (everything but the local and in-memory ones).
    """

    def __init__(self, fs: pafs.FileSystem, root: str = "", *, atomic_rename: bool | None = None,
                 remote: bool | None = None) -> None:
        self.fs = fs
        self.root = root.rstrip("/") if root not in ("", "/") else root
        kind = _base_fs(fs).type_name
        self.atomic_rename = (kind in _RENAMING) if atomic_rename is None else bool(atomic_rename)
        self.remote = (kind not in _LOCAL) if remote is None else bool(remote)
        self.coalesce_gap = REMOTE_COALESCE_GAP if self.remote else 0
        self.coalesce_overread = REMOTE_COALESCE_OVERREAD if self.remote else None
        self._implicit_dirs = kind in _OBJECT_STORES

    def __repr__(self) -> str:
        return f"ArrowStorage({self.fs.type_name}, {self.root!r}, atomic_rename={self.atomic_rename})"

    def join(self, *parts: str) -> str:
        return posixpath.join(*parts)

    # -- reading / writing ------------------------------------------------------------------
    def open_read(self, path: str) -> ReadableFile:
        self.stats.count_open()  # on an object store the open is a request (S3: HEAD, for the size)
        return _ArrowFile(path, self.fs.open_input_file(path), self.stats)

    def open_write(self, path: str, *, temp_suffix: str = ".tmp") -> PendingFile:
        return _ArrowPendingFile(self.fs, path, temp_suffix, self.atomic_rename)

    # -- listing ----------------------------------------------------------------------------
    def _entry(self, i: pafs.FileInfo) -> FileEntry:
        kind = {pafs.FileType.File: "file", pafs.FileType.Directory: "dir"}.get(i.type, "other")
        mtime = i.mtime.timestamp() if i.mtime is not None else time.time()
        return FileEntry(i.path, int(i.size or 0), mtime, kind)

    def list_files(self, top: str) -> Iterator[FileEntry]:
        infos = self.fs.get_file_info(pafs.FileSelector(top, recursive=True, allow_not_found=True))
        for i in infos:
            if i.type == pafs.FileType.File:
                yield self._entry(i)

    def info(self, path: str) -> FileEntry | None:
        i = self.fs.get_file_info(path)
        return None if i.type == pafs.FileType.NotFound else self._entry(i)

    # -- removing ---------------------------------------------------------------------------
    def delete(self, path: str, *, missing_ok: bool = True) -> bool:
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            if not missing_ok:
                raise
            return False
        return True

    def delete_under(self, base: str, rel: str, *, min_age: float | None = None) -> tuple[str, int]:
        parts = clean_relative(rel, posixpath)
        if parts is None:
            return UNSAFE, 0
        entry = self.info(posixpath.join(base, *parts))
        if entry is None:
            return MISSING, 0
        if entry.kind != "file":
            return UNSAFE, 0
        if min_age is not None and time.time() - entry.mtime < min_age:
            return YOUNG, 0
        if not self.delete(entry.path):
            return MISSING, 0
        return REMOVED, entry.size

    def delete_tree(self, path: str) -> None:
        try:
            self.fs.delete_dir(path)
        except OSError:
            pass  # gone already, or not ours to remove: left as it is

    def abort_stale_uploads(self, prefix: str, older_than_seconds: float, *,
                            keep: Callable[[str], bool] | None = None) -> list[str]:
        base = _base_fs(self.fs)
        if base.type_name != "s3":
            return []  # file systems have no uploads; GCS and ABFS let unfinished ones expire (after a week)
        full = _base_path(self.fs, prefix).strip("/")
        bucket, _, key_prefix = full.partition("/")
        if not bucket:
            return []  # not under one bucket: nothing to look at
        key_prefix = key_prefix + "/" if key_prefix else ""
        s3 = _s3_client(base)
        from botocore.exceptions import BotoCoreError, ClientError

        cutoff = time.time() - older_than_seconds
        aborted: list[str] = []
        try:
            # The whole listing first, then ``keep``: a caller's view of the live writers is
            # then taken after every upload listed had begun (see the base class).
            old = [(posixpath.join(prefix, up["Key"][len(key_prefix):]), up)  # in this storage's namespace
                   for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key_prefix)
                   for up in page.get("Uploads", []) if up["Initiated"].timestamp() < cutoff]
            for path, up in old:
                if (keep is not None and keep(path)) or _last_part_time(s3, bucket, up) >= cutoff:
                    continue
                try:
                    s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
                except s3.exceptions.NoSuchUpload:
                    continue  # completed or aborted meanwhile
                aborted.append(path)
        except (BotoCoreError, ClientError) as exc:  # pyarrow's errors are OSErrors: so are these
            raise OSError(f"listing or aborting the unfinished uploads under s3://{bucket}/{key_prefix} failed "
                          f"after {len(aborted)} aborted: {exc}") from exc
        return aborted

    # -- folders ----------------------------------------------------------------------------
    def make_dirs(self, path: str) -> None:
        if self._implicit_dirs:
            return  # pyarrow would PUT an empty marker object per level: requests for nothing
        self.fs.create_dir(path, recursive=True)

    def remove_empty_dirs(self, base: str, rel: str = "", *,
                          match: Callable[[str], bool] | None = None) -> list[str]:
        return []  # see the module docs: no non-recursive folder removal in pyarrow

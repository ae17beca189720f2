"""Verify a table: re-read and fully decode every live file, check every checksum, find leftovers.

Each file is checked by :meth:`FileReader.verify`: every checksum, every size and offset
against the bytes there, and every decoded chunk with Arrow's full validation.

Leftovers are temporary files of writers that died (``*.ssf-tmp``) and orphans: ``.ssf``
files the catalog does not know (a writer killed after renaming its file, before its
commit). Neither is ever visible to readers. Both can be removed, but only once older than
a grace period, so that the files of a writer still at work are never touched.

Removing files is guarded three ways, because a wrong guess deletes training data:

- a table's folder holds a marker (:data:`TABLE_MARKER`) naming the catalog and the table
  incarnation that own it; where it names another catalog or table, nothing there is a
  leftover (a catalog restored from the wrong store, a table re-made over old files);
- a file last written before its table was created cannot be that table's leftover;
- nothing is reached through a symbolic link, and nothing outside the table's folder is
  touched (:func:`remove_in_table`, :func:`remove_empty_partition_folders`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import time
from typing import Any, Iterator

from ..errors import CorruptFileError
from ..format import TEMP_SUFFIX, FileReader

__all__ = ["verify_table", "leftover_files", "TABLE_MARKER", "write_table_marker", "table_folder_problem",
           "remove_in_table", "remove_empty_partition_folders"]

log = logging.getLogger("samplestore.verify")

#: The file in a table's folder that names the catalog and table incarnation owning it.
TABLE_MARKER = ".samplestore-table.json"

# Filesystems keep mtimes at 1-2 s granularity at worst: a file written just after its
# table was created may carry an mtime slightly before the creation time.
_CLOCK_SLACK_SECONDS = 2.0


def write_table_marker(table_dir: str, catalog_id: str, table: str, created_at: float) -> None:
    """Record in ``table_dir`` which catalog and which table (by creation time) own it."""
    doc = {"catalog_id": catalog_id, "table": table, "created_at": created_at}
    path = os.path.join(table_dir, TABLE_MARKER)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def table_folder_problem(table: Any) -> str | None:
    """Why files in the table's folder must not be removed, or None when they may be.

    Folders of tables made before markers existed have none; they are accepted (the
    creation-time rule of :func:`leftover_files` still applies).
    """
    for d in (table.dir, table.data_dir):
        if os.path.islink(d):
            return f"{d!r} is a symbolic link; GC never follows one"
    path = os.path.join(table.dir, TABLE_MARKER)
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return f"its marker {path!r} cannot be read ({exc})"
    meta = table.meta()
    want = {"catalog_id": table.catalog.catalog_id, "table": table.name, "created_at": meta.created_at}
    if not isinstance(doc, dict) or any(doc.get(k) != v for k, v in want.items()):
        return (f"its marker {path!r} names {doc!r}, but this catalog's table is {want!r}: the folder belongs to "
                f"another catalog or to an earlier table of that name")
    return None


def _regular_files(top: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(path, name, lstat) of every regular file under ``top``, never entering a symbolic link."""
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
                    yield e.path, e.name, e.stat(follow_symlinks=False)


def leftover_files(table: Any) -> tuple[list[str], list[str]]:
    """(temporary files, orphan .ssf files) under the table's folder, as absolute paths.

    Files of writers whose lease is live are work in progress, not leftovers; a writer
    process of this host that has died (SIGKILL, OOM) holds no live lease, even before its
    lease lapses. Nothing is returned when the folder is not this catalog's table (see
    :func:`table_folder_problem`), nor files last written before the table was created,
    nor anything behind a symbolic link.
    """
    from .lease import owner_is_dead
    from .writer import writer_lease_of

    problem = table_folder_problem(table)
    if problem is not None:
        log.warning("table %s: looking for no leftovers: %s", table.name, problem)
        return [], []
    created_at = table.meta().created_at
    known = {os.path.normpath(os.path.join(table.dir, p)) for _, p, _ in table.catalog.all_file_paths(table.name)}
    live = {lease for lease, _snap, _exp, owner in table.catalog.live_leases(table.name) if not owner_is_dead(owner)}
    temps, orphans = [], []
    for path, n, st in _regular_files(table.data_dir):
        if writer_lease_of(n) in live:
            continue
        if st.st_mtime < created_at - _CLOCK_SLACK_SECONDS:
            continue  # older than the table: another table's or another catalog's file
        full = os.path.normpath(path)
        if n.endswith(TEMP_SUFFIX):
            temps.append(full)
        elif n.endswith(".ssf") and full not in known:
            orphans.append(full)
    return sorted(temps), sorted(orphans)


def remove_in_table(table_dir: str, rel: str, *, min_age: float | None = None) -> tuple[str, int]:
    """Remove the regular file ``rel`` (relative to ``table_dir``) without following a
    symbolic link: every folder on the way is opened with ``O_NOFOLLOW`` and the file is
    unlinked relative to its folder, so a link swapped in meanwhile cannot redirect it.

    Args:
        min_age: remove only if last modified at least this many seconds ago.

    Returns:
        (status, bytes freed), status one of ``removed``, ``missing``, ``young`` (newer than
        ``min_age``), ``unsafe`` (outside the folder, through a link, or not a regular file).
    """
    norm = os.path.normpath(rel) if rel else ""
    parts = norm.split(os.sep)
    if not norm or os.path.isabs(norm) or os.pardir in parts or norm == os.curdir:
        return "unsafe", 0
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(table_dir, flags)
    except FileNotFoundError:
        return "missing", 0
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return "unsafe", 0
        raise
    try:
        for part in parts[:-1]:
            try:
                sub = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                return "missing", 0
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    return "unsafe", 0
                raise
            os.close(fd)
            fd = sub
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return "missing", 0
        if not stat.S_ISREG(st.st_mode):
            return "unsafe", 0
        if min_age is not None and time.time() - st.st_mtime < min_age:
            return "young", 0
        try:
            os.unlink(parts[-1], dir_fd=fd)
        except FileNotFoundError:
            return "missing", 0
        return "removed", st.st_size
    finally:
        os.close(fd)


def remove_empty_partition_folders(table_dir: str, data: str = "data") -> list[str]:
    """Remove the empty partition folders under ``table_dir/data``, deepest first (so that
    ``ds=x/`` goes once its last ``ds=x/h=1/`` went); ``data`` itself always stays.

    Only Hive-style folders (``name=value``, as writers make them) are removed. As in
    :func:`remove_in_table`, every folder is opened with ``O_NOFOLLOW`` relative to its
    parent, so nothing behind a symbolic link is entered or removed and nothing outside
    ``table_dir`` is touched. A folder is removed with ``rmdir``, which fails on a folder
    that is not empty: a writer that creates a file in a folder at this moment either keeps
    it (the ``rmdir`` fails and is ignored) or finds it gone and makes it again (see
    :func:`~samplestore.table.writer.new_file_in`).

    Returns:
        The folders removed, as absolute paths.
    """
    if os.rmdir not in os.supports_dir_fd or os.scandir not in os.supports_fd:
        return []  # no way to remove relative to an opened folder here: leave them
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    removed: list[str] = []

    def open_in(name: str, parent: int | None) -> int | None:
        try:
            return os.open(name, flags, dir_fd=parent)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                return None  # a link or not a folder: not ours to enter
            raise

    def empty_after_pruning(fd: int, path: str) -> bool:
        empty = True
        with os.scandir(fd) as it:
            entries = list(it)
        for e in entries:
            if not (e.is_dir(follow_symlinks=False) and "=" in e.name):
                empty = False
                continue
            sub = open_in(e.name, fd)
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

    top = open_in(table_dir, None)
    if top is None:
        return []
    try:
        fd = open_in(data, top)
        if fd is None:
            return []
        try:
            empty_after_pruning(fd, os.path.join(table_dir, data))
        finally:
            os.close(fd)
    finally:
        os.close(top)
    return removed


def verify_table(table: Any, *, remove_leftovers: bool = False, grace_seconds: float = 3600.0,
                 on_file: Any = None) -> dict[str, Any]:
    """Check every live file of the current snapshot; report (and optionally remove) leftovers."""
    files = table.files()
    errors, chunks = [], 0
    for f in files:
        path = os.path.join(table.dir, f.path)
        try:
            with FileReader(path) as r:
                if r.num_rows != f.num_rows:
                    raise CorruptFileError(f"file holds {r.num_rows} rows, the catalog says {f.num_rows}", path=path)
                chunks += r.verify()
        except (CorruptFileError, FileNotFoundError) as exc:
            errors.append({"path": path, "error": str(exc)})
        if on_file:
            on_file(1)
    temps, orphans = leftover_files(table)
    removed = []
    if remove_leftovers:
        for p in temps + orphans:
            status, _freed = remove_in_table(table.dir, os.path.relpath(p, table.dir), min_age=grace_seconds)
            if status == "removed":
                removed.append(p)
    return {"table": table.name, "snapshot_id": table.current_snapshot_id, "files_checked": len(files),
            "chunks_checked": chunks, "errors": errors, "temporary_files": temps, "orphan_files": orphans,
            "removed": removed, "ok": not errors}

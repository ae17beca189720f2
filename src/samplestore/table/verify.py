"""Verify a table: re-read and fully decode every live file, check every checksum, find leftovers.

Each file is checked by :meth:`FileReader.verify`: every checksum, every size and offset
against the bytes there, and every decoded chunk with Arrow's full validation.

Leftovers are temporary files of writers that died (``*.ssf-tmp``) and orphans: ``.ssf``
files the catalog does not know (a writer killed after renaming its file, before its
commit; on a storage without rename, killed while writing it). Neither is ever visible to readers. Both can be removed, but only once older than
a grace period, so that the files of a writer still at work are never touched.

Removing files is guarded three ways, because a wrong guess deletes training data:

- a table's folder holds a marker (:data:`TABLE_MARKER`) naming the catalog and the table
  incarnation that own it; where it names another catalog or table, nothing there is a
  leftover (a catalog restored from the wrong store, a table re-made over old files);
- a file last written before its table was created cannot be that table's leftover;
- nothing is reached through a symbolic link, and nothing outside the table's folder is
  touched (:meth:`Storage.delete_under <samplestore.storage.Storage.delete_under>`,
  :func:`remove_empty_partition_folders`; on storages with links).

Every listing and removal goes through the table's storage (:attr:`Table.storage`).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from ..errors import CorruptFileError
from ..format import TEMP_SUFFIX, FileReader
from ..storage import REMOVED, Storage

__all__ = ["verify_table", "leftover_files", "TABLE_MARKER", "write_table_marker", "table_folder_problem",
           "remove_empty_partition_folders"]

log = logging.getLogger("samplestore.verify")

#: The file in a table's folder that names the catalog and table incarnation owning it.
TABLE_MARKER = ".samplestore-table.json"

# Filesystems keep mtimes at 1-2 s granularity at worst: a file written just after its
# table was created may carry an mtime slightly before the creation time.
_CLOCK_SLACK_SECONDS = 2.0


def write_table_marker(storage: Storage, table_dir: str, catalog_id: str, table: str, created_at: float) -> None:
    """Record in ``table_dir`` which catalog and which table (by creation time) own it."""
    doc = {"catalog_id": catalog_id, "table": table, "created_at": created_at}
    storage.write_bytes(storage.join(table_dir, TABLE_MARKER), json.dumps(doc).encode())


def table_folder_problem(table: Any) -> str | None:
    """Why files in the table's folder must not be removed, or None when they may be.

    Folders of tables made before markers existed have none; they are accepted (the
    creation-time rule of :func:`leftover_files` still applies).
    """
    return _folder_check(table)[0]


def _folder_check(table: Any) -> tuple[str | None, bool]:
    """(:func:`table_folder_problem`'s answer, whether the folder has a marker): the marker
    read once for both."""
    storage = table.storage
    for d in (table.dir, table.data_dir):
        found = storage.info(d)
        if found is not None and found.kind == "link":
            return f"{d!r} is a symbolic link; GC never follows one", False
    path = storage.join(table.dir, TABLE_MARKER)
    try:
        doc = json.loads(storage.read_bytes(path))
    except FileNotFoundError:
        return None, False
    except (OSError, ValueError) as exc:
        return f"its marker {path!r} cannot be read ({exc})", True
    meta = table.meta()
    want = {"catalog_id": table.catalog.catalog_id, "table": table.name, "created_at": meta.created_at}
    if not isinstance(doc, dict) or any(doc.get(k) != v for k, v in want.items()):
        return (f"its marker {path!r} names {doc!r}, but this catalog's table is {want!r}: the folder belongs to "
                f"another catalog or to an earlier table of that name"), True
    return None, True


def write_location_problem(table: Any) -> str | None:
    """Why new files of ``table`` must not be written under this store's root, or None.

    A store opened at a mistyped root with a catalog that lives apart (a shared PostgreSQL
    catalog, an S3 prefix) would otherwise write files the catalog then points at, where
    no reader opening the right root finds them. The table's folder must carry this
    table's marker; a folder from before markers is accepted when it exists and holds the
    table's files.
    """
    problem, marked = _folder_check(table)
    if problem is not None or marked:
        return problem
    storage = table.storage
    if storage.info(table.dir) is None:
        return f"its folder {table.dir!r} does not exist under this store's root"
    files = table.catalog.files(table.name, table.current_snapshot_id)
    if files and storage.info(storage.join(table.dir, files[0].path)) is None:
        return f"its folder {table.dir!r} has no marker and not its data file {files[0].path!r}"
    return None


def live_writer_leases(table: Any) -> set[str]:
    """The ids of the table's writer leases that are live (their files are work in progress);
    a lease of a dead process of this host is not, even before it lapses."""
    from .lease import owner_is_dead

    return {lease for lease, _snap, _exp, owner in table.catalog.live_leases(table.name) if not owner_is_dead(owner)}


def leftover_files(table: Any) -> tuple[list[str], list[str]]:
    """(temporary files, orphan .ssf files) under the table's folder, as paths in the table's
    storage (absolute on the local disk).

    Files of writers whose lease is live are work in progress, not leftovers; a writer
    process of this host that has died (SIGKILL, OOM) holds no live lease, even before its
    lease lapses. Nothing is returned when the folder is not this catalog's table (see
    :func:`table_folder_problem`), nor files last written before the table was created,
    nor anything behind a symbolic link.
    """
    from .writer import writer_lease_of

    problem = table_folder_problem(table)
    if problem is not None:
        log.warning("table %s: looking for no leftovers: %s", table.name, problem)
        return [], []
    created_at = table.meta().created_at
    # The order matters: the listing, then the leases, then the committed files. A writer
    # takes its lease before it writes a file and lets it go only once the file is committed
    # (or given up), so the writer of a file listed is either in ``live`` or done, and then
    # its committed files are in ``known``. In another order, a writer that starts, or
    # commits and leaves, between two of the reads would lose a file.
    entries = list(table.storage.list_files(table.data_dir))
    live = live_writer_leases(table)
    known = {os.path.normpath(os.path.join(table.dir, p)) for _, p, _ in table.catalog.all_file_paths(table.name)}
    temps, orphans = [], []
    for entry in entries:
        n = os.path.basename(entry.path)
        if writer_lease_of(n) in live:
            continue
        if entry.mtime < created_at - _CLOCK_SLACK_SECONDS:
            continue  # older than the table: another table's or another catalog's file
        full = os.path.normpath(entry.path)
        if n.endswith(TEMP_SUFFIX):
            temps.append(full)
        elif n.endswith(".ssf") and full not in known:
            orphans.append(full)
    return sorted(temps), sorted(orphans)


def remove_empty_partition_folders(table: Any) -> list[str]:
    """Remove the empty partition folders of the table, deepest first (so that ``ds=x/``
    goes once its last ``ds=x/h=1/`` went); the ``data`` folder itself always stays.

    Only Hive-style folders (``name=value``, as writers make them) are removed, through
    :meth:`Storage.remove_empty_dirs <samplestore.storage.Storage.remove_empty_dirs>`:
    nothing behind a symbolic link is entered or removed, nothing outside the table's folder
    is touched, and a folder in which a writer makes a file at this moment either keeps it
    or is made again by the writer (see :func:`~samplestore.table.writer.new_file_in`).

    Returns:
        The folders removed.
    """
    return table.storage.remove_empty_dirs(table.dir, os.path.relpath(table.data_dir, table.dir),
                                           match=lambda name: "=" in name)


def verify_table(table: Any, *, remove_leftovers: bool = False, grace_seconds: float = 3600.0,
                 on_file: Any = None) -> dict[str, Any]:
    """Check every live file of the current snapshot; report (and optionally remove) leftovers."""
    files = table.files(include_quarantined=True)  # held-back files are bytes on disk to check too
    errors, chunks = [], 0
    for f in files:
        path = table.storage.join(table.dir, f.path)
        try:
            with FileReader(path, table.storage) as r:
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
            status, _freed = table.storage.delete_under(table.dir, os.path.relpath(p, table.dir), min_age=grace_seconds)
            if status == REMOVED:
                removed.append(p)
    return {"table": table.name, "snapshot_id": table.current_snapshot_id, "files_checked": len(files),
            "chunks_checked": chunks, "errors": errors, "temporary_files": temps, "orphan_files": orphans,
            "removed": removed, "ok": not errors}

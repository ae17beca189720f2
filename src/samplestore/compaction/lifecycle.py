"""Snapshot expiry and garbage collection of files no snapshot or reader needs any more."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from typing import Any

from ..catalog.base import RetentionPolicy
from ..errors import MissingDependency
from ..storage import REMOVED, UNSAFE
from ..table import Table
from ..table.verify import leftover_files, live_writer_leases, remove_empty_partition_folders, table_folder_problem
from ..table.writer import writer_lease_of

__all__ = ["expire_snapshots", "gc_table"]

log = logging.getLogger("samplestore.lifecycle")


def expire_snapshots(table: Table, older_than: float | _dt.timedelta | None = None,
                     retain_last: int | None = None) -> list[int]:
    """Forget old snapshots: keep the newest ``retain_last`` and those younger than
    ``older_than`` (seconds or timedelta). Returns the ids expired. Files stay on disk until
    :func:`gc_table`.

    With neither argument given, the table's retention policy decides
    (:attr:`Table.retention <samplestore.table.Table.retention>`; by default a week of
    snapshots and at least the last). Explicit arguments win over the policy for this call,
    and replace it as a whole: ``retain_last=1`` alone keeps only the newest snapshot,
    however young the others are; ``older_than`` alone keeps at least the newest one.

    Whatever is asked, the current snapshot, tagged snapshots and snapshots a live reader
    leases are kept: the catalog checks leases and tags in the transaction that drops.
    """
    if older_than is None and retain_last is None:
        policy = table.retention
    else:
        policy = RetentionPolicy(retain_last=max(1, int(retain_last)) if retain_last is not None else None,
                                 older_than=older_than)
    snaps = table.snapshots()
    keep = {s.snapshot_id for s in snaps[-(policy.retain_last or 1):]}
    if policy.older_than is not None:
        cutoff = time.time() - policy.older_than
        keep |= {s.snapshot_id for s in snaps if s.created_at >= cutoff}
    # Only what was listed may go: snapshots committed since (a streaming writer's, say) are
    # newer than any kept one and must not be dropped unseen.
    upto = snaps[-1].snapshot_id if snaps else 0
    dropped = table.catalog.expire_snapshots(table.name, keep, upto=upto)
    if dropped:
        log.info("expired %d snapshots of %s (kept %d)", len(dropped), table.name, len(snaps) - len(dropped))
    return dropped


def gc_table(table: Table, grace_seconds: float = 3600.0) -> dict[str, Any]:
    """Delete files no retained or leased snapshot references, and leftovers of dead writers
    (temporary and orphan files older than ``grace_seconds``, and on S3 their unfinished
    multipart uploads started that long ago), then partition folders left empty (never the
    table's ``data/`` folder). Returns what was removed (``uploads_aborted`` counts the
    uploads; where they could not be listed, ``uploads_unchecked`` says why and what to do).

    Nothing is deleted when the table's folder is not this catalog's table (see
    :func:`~samplestore.table.verify.table_folder_problem`), and nothing is reached through
    a symbolic link or outside the table's folder: an unreferenced file that can only be
    reached that way stays on disk and in the catalog, with a warning each pass.
    """
    report: dict[str, Any] = {"table": table.name, "files_removed": 0, "leftovers_removed": 0, "bytes_freed": 0,
                              "folders_removed": 0, "uploads_aborted": 0}
    problem = table_folder_problem(table)
    if problem is not None:
        log.warning("gc %s: removing nothing: %s", table.name, problem)
        return {**report, "skipped": problem}
    unref = table.catalog.unreferenced_files(table.name)
    removed, kept, freed = [], [], 0
    for fid, path in unref:
        status, size = table.storage.delete_under(table.dir, path)
        if status == UNSAFE:
            kept.append(path)
            continue
        freed += size
        removed.append(fid)  # removed now, or gone already: either way the catalog may forget it
    if kept:
        log.warning("gc %s: kept %d unreferenced files that lie outside the table's folder or behind a symbolic "
                    "link (first: %r); move them back under %r to let GC remove them", table.name, len(kept), kept[0],
                    table.dir)
    table.catalog.forget_files(table.name, removed)
    temps, orphans = leftover_files(table)
    leftovers = []
    for p in temps + orphans:
        status, size = table.storage.delete_under(table.dir, os.path.relpath(p, table.dir), min_age=grace_seconds)
        if status == REMOVED:
            freed += size
            leftovers.append(p)
    uploads = _abort_stale_uploads(table, grace_seconds, report)
    # Folders are checked on every pass, not only those emptied now: one emptied before
    # folders were removed, or whose rmdir lost a race with a writer, goes on a later pass.
    folders = remove_empty_partition_folders(table)
    if removed or leftovers or folders or uploads:
        log.info("gc %s: removed %d unreferenced files, %d leftovers and %d empty partition folders, %.1f MB freed; "
                 "aborted %d unfinished uploads", table.name, len(removed), len(leftovers), len(folders), freed / 1e6,
                 len(uploads))
    return {**report, "files_removed": len(removed), "leftovers_removed": len(leftovers), "bytes_freed": freed,
            "folders_removed": len(folders), "uploads_aborted": len(uploads)}


def _abort_stale_uploads(table: Table, grace_seconds: float, report: dict[str, Any]) -> list[str]:
    """Abort the unfinished uploads of dead writers under the table's data folder (S3: a
    writer killed mid-upload leaves one, stored and billed but never listed), once older than
    the grace period; a live writer's are kept. Where the storage cannot list them, says so in
    ``report`` and the log, and carries on."""
    # The leases are read after the uploads are listed (at keep's first call): a writer takes
    # its lease before it begins an upload, so the writer of every upload listed is in
    # ``live`` while it lives. Read before the listing, a writer starting in between would be
    # missing, and with no grace its first upload aborted.
    live: set[str] | None = None

    def keep(path: str) -> bool:
        nonlocal live
        if live is None:
            live = live_writer_leases(table)
        return writer_lease_of(path.rsplit("/", 1)[-1]) in live

    try:
        return table.storage.abort_stale_uploads(table.data_dir, grace_seconds, keep=keep)
    except (MissingDependency, OSError) as exc:  # the rest of GC stands; the next pass tries again
        report["uploads_unchecked"] = str(exc)
        log.warning("gc %s: unfinished uploads of killed writers were not checked: %s", table.name, exc)
        return []

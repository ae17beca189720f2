"""Snapshot expiry and garbage collection of files no snapshot or reader needs any more."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from typing import Any

from ..table.verify import leftover_files

__all__ = ["expire_snapshots", "gc_table"]

log = logging.getLogger("samplestore.lifecycle")


def expire_snapshots(table: Any, older_than: float | _dt.timedelta | None = None, retain_last: int = 1) -> list[int]:
    """Forget old snapshots: keep the newest ``retain_last`` and those younger than
    ``older_than`` (seconds or timedelta); the current snapshot and snapshots pinned by a
    live reader lease are always kept. Returns the ids expired. Files stay on disk until
    :func:`gc_table`.
    """
    snaps = table.snapshots()
    keep = {s.snapshot_id for s in snaps[-max(1, retain_last):]}
    if older_than is not None:
        age = older_than.total_seconds() if isinstance(older_than, _dt.timedelta) else float(older_than)
        cutoff = time.time() - age
        keep |= {s.snapshot_id for s in snaps if s.created_at >= cutoff}
    dropped = table._catalog.expire_snapshots(table.name, keep)
    if dropped:
        log.info("expired %d snapshots of %s (kept %d)", len(dropped), table.name, len(snaps) - len(dropped))
    return dropped


def gc_table(table: Any, grace_seconds: float = 3600.0) -> dict[str, Any]:
    """Delete files no retained or leased snapshot references, and leftovers of dead writers
    (temporary and orphan files older than ``grace_seconds``). Returns what was removed.
    """
    unref = table._catalog.unreferenced_files(table.name)
    removed, freed = [], 0
    for fid, path in unref:
        full = os.path.join(table.dir, path)
        try:
            freed += os.path.getsize(full)
            os.unlink(full)
        except FileNotFoundError:
            pass
        removed.append(fid)
    table._catalog.forget_files(table.name, removed)
    temps, orphans = leftover_files(table)
    now = time.time()
    leftovers = []
    for p in temps + orphans:
        try:
            if now - os.path.getmtime(p) >= grace_seconds:
                freed += os.path.getsize(p)
                os.unlink(p)
                leftovers.append(p)
        except FileNotFoundError:
            pass
    if removed or leftovers:
        log.info("gc %s: removed %d unreferenced files and %d leftovers, %.1f MB freed", table.name, len(removed),
                 len(leftovers), freed / 1e6)
    return {"table": table.name, "files_removed": len(removed), "leftovers_removed": len(leftovers), "bytes_freed": freed}

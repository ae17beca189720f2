"""Verify a table: re-read and fully decode every live file, check every checksum, find leftovers.

Each file is checked by :meth:`FileReader.verify`: every checksum, every size and offset
against the bytes there, and every decoded chunk with Arrow's full validation.

Leftovers are temporary files of writers that died (``*.ssf-tmp``) and orphans: ``.ssf``
files the catalog does not know (a writer killed after renaming its file, before its
commit). Neither is ever visible to readers. Both can be removed, but only once older than
a grace period, so that the files of a writer still at work are never touched.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..errors import CorruptFileError
from ..format import TEMP_SUFFIX, FileReader

__all__ = ["verify_table", "leftover_files"]


def leftover_files(table: Any) -> tuple[list[str], list[str]]:
    """(temporary files, orphan .ssf files) under the table's folder, as absolute paths.

    Files of writers whose lease is live are work in progress, not leftovers; a writer
    process of this host that has died (SIGKILL, OOM) holds no live lease, even before its
    lease lapses.
    """
    from .lease import owner_is_dead
    from .writer import writer_lease_of

    known = {os.path.normpath(os.path.join(table.dir, p)) for _, p, _ in table._catalog.all_file_paths(table.name)}
    live = {lease for lease, _snap, _exp, owner in table._catalog.live_leases(table.name) if not owner_is_dead(owner)}
    temps, orphans = [], []
    for dirpath, _dirs, names in os.walk(table.data_dir):
        for n in names:
            if writer_lease_of(n) in live:
                continue
            full = os.path.normpath(os.path.join(dirpath, n))
            if n.endswith(TEMP_SUFFIX):
                temps.append(full)
            elif n.endswith(".ssf") and full not in known:
                orphans.append(full)
    return sorted(temps), sorted(orphans)


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
        now = time.time()
        for p in temps + orphans:
            try:
                if now - os.path.getmtime(p) >= grace_seconds:
                    os.unlink(p)
                    removed.append(p)
            except FileNotFoundError:
                pass
    return {"table": table.name, "snapshot_id": table.current_snapshot_id, "files_checked": len(files),
            "chunks_checked": chunks, "errors": errors, "temporary_files": temps, "orphan_files": orphans,
            "removed": removed, "ok": not errors}

"""The compaction daemon: compaction, snapshot expiry and GC across every table, in a loop.

It runs beside writers and readers without blocking them: every action is an ordinary
optimistic commit, files become visible only through commits, and GC removes only files no
retained snapshot or live reader lease needs. SIGTERM stops it between steps; SIGKILL at
any point leaves every table consistent (the next run finishes the work).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any, Sequence

from ..errors import SampleStoreError
from .compactor import compact
from .lifecycle import expire_snapshots, gc_table
from .plan import DEFAULT_TARGET_FILE_BYTES

__all__ = ["run_once", "run_daemon"]

log = logging.getLogger("samplestore.daemon")


def run_once(store: Any, tables: Sequence[str] | None = None, *, target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
             sort_by: Sequence[str] | None = None, retain_last: int = 1, older_than: float | None = None,
             grace_seconds: float = 3600.0, should_stop: Any = None) -> list[dict[str, Any]]:
    """One pass over the tables: compact, expire, gc. Returns a report per table."""
    reports = []
    for name in tables or store.tables():
        if should_stop is not None and should_stop():
            break
        t0 = time.perf_counter()
        try:
            table = store.table(name)
            props = table._meta().properties
            cols = props.get("compaction.sort_by", sort_by)
            res = compact(table, target_file_bytes, sort_by=cols, should_stop=should_stop)
            expired = expire_snapshots(table, older_than=older_than, retain_last=retain_last)
            gc = gc_table(table, grace_seconds)
        except SampleStoreError as exc:  # one bad table must not stop the others
            log.error("table %s: %s", name, exc)
            reports.append({"table": name, "error": str(exc)})
            continue
        rep = {**res.to_dict(), "snapshots_expired": len(expired), **{k: v for k, v in gc.items() if k != "table"},
               "seconds": round(time.perf_counter() - t0, 3)}
        log.info("table %s: %d files -> %d, %d snapshots expired, %d files removed, %.2f s", name, rep["files_in"],
                 rep["files_out"], rep["snapshots_expired"], rep["files_removed"], rep["seconds"])
        reports.append(rep)
    return reports


def run_daemon(store: Any, interval: float = 60.0, max_passes: int | None = None, **options: Any) -> int:
    """Run :func:`run_once` every ``interval`` seconds until SIGTERM/SIGINT; returns passes run."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping after the current step", signum)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    passes = 0
    try:
        while not stop.is_set():
            run_once(store, should_stop=stop.is_set, **options)
            passes += 1
            if max_passes is not None and passes >= max_passes:
                break
            stop.wait(interval)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    log.info("daemon stopped after %d passes", passes)
    return passes

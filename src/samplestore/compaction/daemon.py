"""The compaction daemon: compaction, snapshot expiry and GC across every table, in a loop.

It runs beside writers and readers without blocking them: every action is an ordinary
optimistic commit, files become visible only through commits, and GC removes only files no
retained snapshot or live reader lease needs. SIGTERM stops it between steps; SIGKILL at
any point leaves every table consistent (the next run finishes the work).

Errors of the environment (a full disk, a busy or unreachable catalog, an I/O error) do not
stop it: the error is logged, and what failed is retried after an exponential back-off
(capped), a table that fails on its own without holding up the others.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any, Callable, Sequence

from ..errors import SampleStoreError
from ..table import Store
from ..table.maintenance import compact_executor
from .compactor import compact
from .lifecycle import expire_snapshots, gc_table
from .plan import DEFAULT_TARGET_FILE_BYTES, check_layout

__all__ = ["run_once", "run_daemon", "SORT_BY_PROPERTY", "LAYOUT_PROPERTY"]

#: Table properties that say how compaction lays out a table's rows: a list of columns to
#: sort by, or a layout of :data:`~samplestore.compaction.plan.LAYOUTS` (``"shuffled"``).
SORT_BY_PROPERTY = "compaction.sort_by"
LAYOUT_PROPERTY = "compaction.layout"

log = logging.getLogger("samplestore.daemon")

# What a pass may meet and live through: samplestore's own errors (a catalog backend raises
# its driver's errors as CatalogError, see catalog.base.Catalog), and the environment's
# (OSError: disk full, I/O errors, a vanished file). Anything else is a bug and stops the
# daemon loudly.
_RECOVERABLE = (SampleStoreError, OSError)


def _backoff(interval: float, failures: int, max_backoff: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures: doubling from the interval
    (at least 1 s), capped at ``max_backoff``, never shorter than the interval."""
    return max(interval, min(max(interval, 1.0) * 2.0 ** (failures - 1), max_backoff))


def run_once(store: Store, tables: Sequence[str] | None = None, *, target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
             sort_by: Sequence[str] | None = None, retain_last: int | None = None, older_than: float | None = None,
             grace_seconds: float = 3600.0, compact_seconds: float | None = None,
             should_stop: Any = None, executor: str = "local",
             executor_options: dict[str, Any] | None = None, layout: str | None = None) -> list[dict[str, Any]]:
    """One pass over the tables: compact, expire, gc. Returns a report per table.

    Each table is compacted with ``sort_by`` or ``layout`` (see
    :func:`~samplestore.compaction.compact`), unless it sets its own in its properties
    (:data:`SORT_BY_PROPERTY`, :data:`LAYOUT_PROPERTY`): a table that sets either is compacted
    by its properties only. A property with a bad value fails that table's compaction (the
    report says why), not the pass; its expiry and GC still run.

    Expiry follows each table's own retention policy (``table.set_retention``; by default a
    week of snapshots and at least the last), unless ``retain_last`` or ``older_than`` is
    given: explicit values win over every table's policy (see
    :func:`~samplestore.compaction.expire_snapshots`). Tagged snapshots are always kept.

    ``compact_seconds`` bounds each table's compaction (no group starts after it), so that
    expiry and GC run in every pass even while writers keep adding small files.

    ``executor`` runs the compaction: ``"local"`` (this process) or ``"ray"`` (the groups
    rewritten as Ray tasks, ``executor_options`` such as ``address`` passed on; see
    ``Table.compact``).
    """
    check_layout(layout, sort_by, "run_once")
    run_compact = compact if executor == "local" else compact_executor(executor)
    reports = []
    for name in store.tables() if tables is None else tables:
        if should_stop is not None and should_stop():
            break
        t0 = time.perf_counter()
        errors: list[str] = []
        res = None
        try:
            table = store.table(name)
        except _RECOVERABLE as exc:  # one bad table must not stop the others
            _failed(reports, name, [_error_text(exc)])
            continue
        try:
            cols, shape = _layout_of(name, table.meta().properties, sort_by, layout)
            res = run_compact(table, target_file_bytes, sort_by=cols, layout=shape, should_stop=should_stop,
                              max_seconds=compact_seconds, **(executor_options or {}))
        except _RECOVERABLE as exc:
            errors.append(_error_text(exc))
        # Expiry and GC run whatever became of the compaction: a table whose compaction keeps
        # failing (a bad property, say) still loses its expired snapshots and their bytes.
        try:
            expired = expire_snapshots(table, older_than=older_than, retain_last=retain_last)
            gc = gc_table(table, grace_seconds)
        except _RECOVERABLE as exc:
            errors.append(_error_text(exc))
        if errors or res is None:
            _failed(reports, name, errors)
            continue
        rep = {**res.to_dict(), "snapshots_expired": len(expired), **{k: v for k, v in gc.items() if k != "table"},
               "seconds": round(time.perf_counter() - t0, 3)}
        log.info("table %s: %d files -> %d, %d snapshots expired, %d files removed, %.2f s%s", name, rep["files_in"],
                 rep["files_out"], rep["snapshots_expired"], rep["files_removed"], rep["seconds"],
                 " (compaction time limit reached; the next pass goes on)" if res.time_limited else "")
        reports.append(rep)
    return reports


def _error_text(exc: BaseException) -> str:
    # samplestore's messages say what and where; an OSError's needs the type.
    return str(exc) if isinstance(exc, SampleStoreError) else f"{type(exc).__name__}: {exc}"


def _failed(reports: list[dict[str, Any]], name: str, errors: list[str]) -> None:
    text = "; ".join(errors)
    log.error("table %s: %s", name, text)
    reports.append({"table": name, "error": text})


def _layout_of(name: str, props: Any, sort_by: Sequence[str] | None,
               layout: str | None) -> tuple[Sequence[str] | None, str | None]:
    """The sort key and layout to compact table ``name`` with: its properties' if it sets
    either, else those given."""
    if SORT_BY_PROPERTY not in props and LAYOUT_PROPERTY not in props:
        return sort_by, layout
    cols, shape = props.get(SORT_BY_PROPERTY), props.get(LAYOUT_PROPERTY)
    check_layout(shape, cols, f"table {name!r}, properties {SORT_BY_PROPERTY!r} / {LAYOUT_PROPERTY!r}")
    return cols, shape


#: The daemon's default bound on one table's compaction in one pass (seconds).
DAEMON_COMPACT_SECONDS = 300.0


def run_daemon(store: Store | Callable[[], Store], interval: float = 60.0, max_passes: int | None = None, *,
               max_backoff: float = 600.0, compact_seconds: float | None = DAEMON_COMPACT_SECONDS,
               **options: Any) -> int:
    """Run :func:`run_once` every ``interval`` seconds until SIGTERM/SIGINT; returns passes run.

    Each table's compaction in a pass is bounded by ``compact_seconds`` (default five
    minutes; None for no bound), so snapshots expire and garbage is collected in every pass
    however fast writers add small files.

    ``store`` may be a function that opens the store: the daemon then opens it in its loop,
    so that one started while the catalog is unreachable waits and retries (with the same
    back-off as a failed pass) instead of exiting.

    A pass that fails as a whole (the catalog cannot list the tables, say) is logged and
    retried after ``interval`` doubled per consecutive failure, at most ``max_backoff``
    seconds; a table whose step fails is logged and skipped by later passes for the same
    back-off, while the other tables carry on at ``interval``.
    """
    # Arguments that would fail every pass fail now, not as a retried pass.
    check_layout(options.get("layout"), options.get("sort_by"), "run_daemon")
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping after the current step", signum)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    passes = 0
    failures = 0  # consecutive passes that failed as a whole
    held_back: dict[str, tuple[int, float]] = {}  # table -> (consecutive failures, not before)
    opener = None if isinstance(store, Store) else store
    try:
        while not stop.is_set():
            delay = interval
            try:
                if opener is not None:
                    store = opener()
                    opener = None
                    log.info("opened %r", store)
                now = time.monotonic()
                names = [n for n in store.tables() if held_back.get(n, (0, 0.0))[1] <= now]
                for rep in run_once(store, names, should_stop=stop.is_set, compact_seconds=compact_seconds, **options):
                    if "error" in rep:
                        k = held_back.get(rep["table"], (0, 0.0))[0] + 1
                        wait = _backoff(interval, k, max_backoff)
                        held_back[rep["table"]] = (k, time.monotonic() + wait)
                        log.warning("table %s failed %d time(s) in a row; next try in %.3g s", rep["table"], k, wait)
                    else:
                        held_back.pop(rep["table"], None)
                failures = 0
            except _RECOVERABLE as exc:
                failures += 1
                delay = _backoff(interval, failures, max_backoff)
                log.error("pass failed (%d in a row): %s: %s; next pass in %.3g s", failures, type(exc).__name__, exc,
                          delay)
            passes += 1
            if max_passes is not None and passes >= max_passes:
                break
            stop.wait(delay)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    log.info("daemon stopped after %d passes", passes)
    return passes

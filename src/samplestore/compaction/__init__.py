"""Compaction, deletes' physical purge, snapshot expiry, garbage collection and the daemon.

Importing this package registers it as the implementation behind ``Table.compact()``,
``Table.compaction_plan()``, ``Table.expire_snapshots()`` and ``Table.gc()`` (see
:mod:`samplestore.table.maintenance`): ``table/`` lies below this package and never imports
it. ``samplestore/__init__.py`` imports this package, so the registration always happens.
"""

from __future__ import annotations

from ..table.maintenance import Maintenance, register_maintenance
from .compactor import CompactionResult, compact
from .daemon import run_daemon, run_once
from .lifecycle import expire_snapshots, gc_table
from .plan import DEFAULT_TARGET_FILE_BYTES, LAYOUTS, CompactionGroup, CompactionPlan, plan_compaction

__all__ = ["compact", "CompactionResult", "plan_compaction", "CompactionPlan", "CompactionGroup", "expire_snapshots",
           "gc_table", "run_once", "run_daemon", "DEFAULT_TARGET_FILE_BYTES", "LAYOUTS"]

register_maintenance(Maintenance(compact=compact, plan_compaction=plan_compaction, expire_snapshots=expire_snapshots,
                                 gc=gc_table, default_target_file_bytes=DEFAULT_TARGET_FILE_BYTES))

"""Compaction, deletes' physical purge, snapshot expiry, garbage collection and the daemon."""

from __future__ import annotations

from .compactor import CompactionResult, compact
from .daemon import run_daemon, run_once
from .lifecycle import expire_snapshots, gc_table
from .plan import DEFAULT_TARGET_FILE_BYTES, CompactionGroup, CompactionPlan, plan_compaction

__all__ = ["compact", "CompactionResult", "plan_compaction", "CompactionPlan", "CompactionGroup", "expire_snapshots",
           "gc_table", "run_once", "run_daemon", "DEFAULT_TARGET_FILE_BYTES"]

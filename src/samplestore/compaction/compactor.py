"""Run a compaction: rewrite each planned group and commit it as one replace snapshot."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.base import SHUFFLED_SORT_KEY
from ..errors import CommitConflict
from ..format import FileReader, FileWriter
from ..table import Table
from ..table.partition import partition_path
from ..table.scan import live_mask
from ..table.lease import Lease
from ..table.writer import TABLE_ROW_GROUP_ROWS, data_file_from_info, data_file_name, new_file_in
from .plan import DEFAULT_TARGET_FILE_BYTES, CompactionGroup, check_layout, plan_compaction

__all__ = ["compact", "CompactionResult", "RewriteGroups", "rewrite_group", "rewrite_in_process", "drop_new_files"]

log = logging.getLogger("samplestore.compaction")


@dataclass
class CompactionResult:
    """What a compaction did: per committed group, files and bytes in and out, rows, time."""

    table: str
    commits: list[dict[str, Any]] = field(default_factory=list)
    conflicts: int = 0
    #: True when ``max_seconds`` ran out with groups still to rewrite (the next run goes on).
    time_limited: bool = False

    @property
    def files_in(self) -> int:
        return sum(c["files_in"] for c in self.commits)

    @property
    def files_out(self) -> int:
        return sum(c["files_out"] for c in self.commits)

    @property
    def bytes_in(self) -> int:
        return sum(c["bytes_in"] for c in self.commits)

    @property
    def bytes_out(self) -> int:
        return sum(c["bytes_out"] for c in self.commits)

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "files_in": self.files_in, "files_out": self.files_out, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "conflicts": self.conflicts, "time_limited": self.time_limited,
                "commits": self.commits}


def _live_rows(table: Any, path: str, deleted: Any) -> pa.Table:
    with FileReader(table.storage.join(table.dir, path), table.storage) as r:
        schema = table.schema
        present = [c for c in schema.names if r.has_column(c)]
        data = r.read(present)
        data = schema.fill_missing(data)  # files from before a schema change: fill defaults
        if deleted is not None and len(deleted):
            keep = live_mask(deleted, 0, data.num_rows)
            if keep is not None:
                data = data.filter(pa.array(keep))
        return data


def rewrite_group(table: Any, group: CompactionGroup, deletes: Mapping[int, Any], target: int,
                  sort_by: Sequence[str] | None, row_group_rows: int, lease_id: str | None = None,
                  layout: str | None = None) -> list[Any]:
    """Write the live rows of one planned group into new files named with the writer lease
    ``lease_id`` (so GC leaves them alone while it is live); return their catalog entries.
    Nothing is committed: the caller commits the entries as one replace, or drops the files
    (:func:`drop_new_files`). Every executor runs this same step (in process, or as a Ray task).

    With ``sort_by`` every new file holds rows in that order, and its entry says so
    (``DataFile.sort_key``), so later compactions with the same key leave it alone. With
    ``layout="shuffled"`` the group's live rows are written in a uniformly random order, drawn
    afresh for every rewrite, and the entries say so (``DataFile.shuffled``).
    """
    storage = table.storage
    folder = storage.join(table.data_dir, partition_path(group.partition))
    schema = table.schema
    parts = (_live_rows(table, p, deletes.get(fid)) for fid, p in zip(group.file_ids, group.paths))
    if sort_by or layout == "shuffled":  # the order spans the whole group: read it all first
        data = pa.concat_tables(list(parts))
        if sort_by:
            order = pc.sort_indices(data, [(c, "ascending") for c in sort_by])
        else:
            order = np.random.default_rng().permutation(data.num_rows)  # OS entropy: a new order each time
        parts = iter([data.take(order)])
    key = SHUFFLED_SORT_KEY if layout == "shuffled" else tuple(sort_by or ())
    out, writer = [], None
    try:
        for data in parts:
            for start in range(0, data.num_rows, row_group_rows):
                if writer is None:
                    path = storage.join(folder, data_file_name(lease_id))
                    # The folder is made only when a file goes in it (a group whose rows
                    # were all deleted writes none) and made again if GC removed it.
                    writer = new_file_in(storage, folder, lambda: FileWriter(path, schema, row_group_rows=row_group_rows,
                                                                             storage=storage))
                writer.write(data.slice(start, row_group_rows))
                if writer.bytes_written >= target:
                    out.append(_entry(table, writer.close(), group, key))
                    writer = None
        if writer is not None and writer.num_rows:
            out.append(_entry(table, writer.close(), group, key))
        elif writer is not None:
            writer.abort()
    except BaseException:
        if writer is not None:
            writer.abort()
        drop_new_files(table, out)
        raise
    return out


def _entry(table: Any, info: Any, group: CompactionGroup, sort_key: tuple[str, ...]) -> Any:
    """The catalog entry of a new file of ``group``, with its sort key."""
    entry = data_file_from_info(info, table.dir, dict(group.partition))
    # Held files' rewrite stays in their quarantine (the catalog checks it is still open).
    return replace(entry, sort_key=sort_key, quarantine_id=group.quarantine_id)


def drop_new_files(table: Any, files: Iterable[Any]) -> None:
    """Drop new files no commit references (the writer's own: no GC guards needed)."""
    for f in files:
        table.storage.delete(table.storage.join(table.dir, f.path))


#: What rewrites the groups of a plan: ``rewrite_groups(table, groups, deletes, target_file_bytes,
#: sort_by, row_group_rows, lease_id, should_stop, layout=)`` yields ``(group, new files, seconds)``
#: as each group is rewritten (in any order, each by :func:`rewrite_group`), stops early when
#: ``should_stop()`` says so, and on being closed early drops the new files of groups it
#: rewrote but did not yield.
RewriteGroups = Callable[..., Iterator[tuple[CompactionGroup, list[Any], float]]]


def rewrite_in_process(table: Any, groups: Sequence[CompactionGroup], deletes: Mapping[int, Any],
                       target_file_bytes: int, sort_by: Sequence[str] | None, row_group_rows: int,
                       lease_id: str | None, should_stop: Any = None, layout: str | None = None
                       ) -> Iterator[tuple[CompactionGroup, list[Any], float]]:
    """The local executor (:data:`RewriteGroups`): one group after another, in this process."""
    for group in groups:
        if should_stop is not None and should_stop():
            return
        t0 = time.perf_counter()
        new = rewrite_group(table, group, deletes, target_file_bytes, sort_by, row_group_rows, lease_id,
                            layout=layout)
        yield group, new, time.perf_counter() - t0


def compact(table: Table, target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES, sort_by: Sequence[str] | None = None,
            partitions: Iterable[Mapping[str, Any]] | None = None, max_attempts: int = 5,
            row_group_rows: int = TABLE_ROW_GROUP_ROWS, should_stop: Any = None,
            max_seconds: float | None = None, rewrite_groups: RewriteGroups | None = None,
            layout: str | None = None) -> CompactionResult:
    """Compact a table: merge small files per partition, drop deleted rows, optionally sort
    (``sort_by``) or shuffle (``layout="shuffled"``) the rows of each rewritten group.

    Each group is one ``replace`` commit. Appends committed meanwhile are untouched; a group
    that lost a race (its files were replaced, or rows in them deleted, after planning) is
    re-planned and retried, ``max_attempts`` times in all. Passes repeat until no small
    files are left to merge. ``should_stop()`` ends the run between groups (SIGTERM).

    ``max_seconds`` bounds the run: no group is started after that many seconds (a group
    started is finished and committed), except the first, so that every run makes progress
    however long planning took; the result says ``time_limited``. The daemon uses it so
    that, while writers keep adding small files, a pass still gets to expiry and GC instead
    of merging for ever.

    ``rewrite_groups`` runs the rewrites (:data:`RewriteGroups`; default
    :func:`rewrite_in_process`): planning and the commits stay here, in this process, whatever
    runs the rewrites (``samplestore.ray`` passes one that runs them as Ray tasks).

    ``layout="shuffled"`` (see :data:`~samplestore.compaction.plan.LAYOUTS`) writes each group's
    live rows in a uniformly random order and marks the files so (``DataFile.shuffled``): like
    ``sort_by``, it rewrites every file not in that layout whatever its size, and leaves the
    files it wrote alone next time. It replaces ``sort_by``: asking for both raises
    :class:`~samplestore.errors.SchemaError`.
    """
    if max_seconds is not None and max_seconds < 0:
        raise ValueError(f"max_seconds must be >= 0 (or None for no bound), got {max_seconds!r}")
    check_layout(layout, sort_by)
    if sort_by:
        table.check_columns(sort_by)
    result = CompactionResult(table.name)
    parts = list(partitions) if partitions is not None else None
    # Merged files compress better than their inputs, so outputs of one pass can still be
    # "small": passes repeat until nothing is left to merge or a pass stops reducing files.
    conflicts_left = max_attempts
    lease = Lease(table.catalog, table.name, 0)  # marks the files being written as in progress
    if max_seconds is not None:
        deadline = time.monotonic() + max_seconds
        stop_requested = should_stop

        def should_stop() -> bool:
            if stop_requested is not None and stop_requested():
                return True
            tried = bool(result.commits) or result.conflicts > 0  # the first group always runs
            result.time_limited = tried and time.monotonic() >= deadline
            return result.time_limited
    try:
        return _compact(table, result, parts, target_file_bytes, sort_by, layout, row_group_rows, should_stop,
                        conflicts_left, lease, rewrite_groups or rewrite_in_process)
    finally:
        lease.release()


def _compact(table: Any, result: CompactionResult, parts: Any, target_file_bytes: int, sort_by: Any,
             layout: str | None, row_group_rows: int, should_stop: Any, conflicts_left: int, lease: Lease,
             rewrite_groups: RewriteGroups) -> CompactionResult:
    for _pass in range(32):
        before = (result.files_in, result.files_out)
        plan = plan_compaction(table, target_file_bytes, parts, sort_by=sort_by, layout=layout)
        if not plan.groups:
            return result
        deletes = table.catalog.deleted_positions(table.name, plan.snapshot_id,
                                                  [i for g in plan.groups for i in g.file_ids])
        rewritten = rewrite_groups(table, plan.groups, deletes, target_file_bytes, sort_by, row_group_rows,
                                   lease.lease_id, should_stop, layout=layout)
        try:
            retry = _commit_groups(table, result, plan, rewritten, sort_by, layout, lease)
        finally:
            rewritten.close()  # a group rewritten but not committed (a conflict, an error) is dropped
        if should_stop is not None and should_stop():
            return result
        if retry:
            conflicts_left -= 1
            if conflicts_left <= 0:
                return result
            continue
        merged = (result.files_in - before[0]) - (result.files_out - before[1])
        if merged <= 0:
            return result
    return result


def _commit_groups(table: Any, result: CompactionResult, plan: Any, rewritten: Iterator[Any],
                   sort_by: Sequence[str] | None, layout: str | None, lease: Lease) -> bool:
    """Commit each rewritten group as one replace; True when one lost a race (re-plan)."""
    for group, new, seconds in rewritten:
        try:
            # A lapsed lease no longer keeps GC off the new files: do not commit them.
            lease.check()
        except BaseException:
            drop_new_files(table, new)
            raise
        try:
            snap = table.catalog.commit(table.name, "replace", add=new, remove=group.file_ids,
                                        planned_at=plan.snapshot_id,
                                        summary={"compaction": True, "sort_by": list(sort_by or []), "layout": layout})
        except CommitConflict as exc:
            drop_new_files(table, new)
            result.conflicts += 1
            log.info("compaction of %s %s lost a race, re-planning: %s", table.name, dict(group.partition), exc)
            return True
        entry = {"snapshot_id": snap.snapshot_id, "partition": dict(group.partition), "files_in": len(group.file_ids),
                 "files_out": len(new), "bytes_in": group.bytes, "bytes_out": sum(f.file_bytes for f in new),
                 "rows": sum(f.num_rows for f in new), "deleted_rows_purged": group.deleted_rows,
                 "seconds": round(seconds, 3)}
        result.commits.append(entry)
        log.info("compacted %s %s: %d files (%.1f MB) -> %d files (%.1f MB), %d rows, %d deleted rows purged, %.2f s",
                 table.name, dict(group.partition), entry["files_in"], entry["bytes_in"] / 1e6, entry["files_out"],
                 entry["bytes_out"] / 1e6, entry["rows"], entry["deleted_rows_purged"], entry["seconds"])
    return False

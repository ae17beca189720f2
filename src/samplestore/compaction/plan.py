"""Compaction planning: which small files of each partition to merge into which new files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..catalog.base import partition_key
from ..errors import SchemaError
from ..table import Table

__all__ = ["CompactionGroup", "CompactionPlan", "plan_compaction", "check_layout", "LAYOUTS",
           "DEFAULT_TARGET_FILE_BYTES"]

DEFAULT_TARGET_FILE_BYTES = 128 << 20

#: The layouts compaction writes on request. ``None`` (the default) keeps rows in commit order
#: (or in ``sort_by`` order when given); ``"shuffled"`` writes the live rows of each rewritten
#: group in a uniformly random order, for training tables (the loader's bounded shuffle then
#: draws each batch from rows of the whole group, not from a few stretches of it).
LAYOUTS = ("shuffled",)


def check_layout(layout: str | None, sort_by: Sequence[str] | None, where: str = "compaction") -> None:
    """Check a compaction ``layout`` (see :data:`LAYOUTS`) and that it is not asked for with
    ``sort_by``: both decide the order of the rows in the new files.

    Raises:
        SchemaError: an unknown layout, or a layout with ``sort_by`` (``where`` says whose).
    """
    if layout is not None and layout not in LAYOUTS:
        raise SchemaError(f"{where}: layout must be one of {list(LAYOUTS)} or None (rows in commit order); "
                          f"found {layout!r}")
    if layout is not None and sort_by:
        raise SchemaError(f"{where}: layout {layout!r} and sort_by {list(sort_by)} both set the order of the rows; "
                          "give one of them")


@dataclass(frozen=True, slots=True)
class CompactionGroup:
    """Files of one partition to rewrite together into files near the target size."""

    partition: Mapping[str, Any]
    file_ids: tuple[int, ...]
    paths: tuple[str, ...]
    rows: int
    bytes: int
    deleted_rows: int
    #: The open quarantine whose held files these are (None: visible files): the new files
    #: join it, so held rows are never merged with visible ones.
    quarantine_id: int | None = None


@dataclass(frozen=True, slots=True)
class CompactionPlan:
    """What a compaction would do, planned on one snapshot."""

    table: str
    snapshot_id: int
    target_file_bytes: int
    groups: tuple[CompactionGroup, ...]

    @property
    def files_in(self) -> int:
        return sum(len(g.file_ids) for g in self.groups)

    @property
    def bytes_in(self) -> int:
        return sum(g.bytes for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "snapshot_id": self.snapshot_id, "target_file_bytes": self.target_file_bytes,
                "files_in": self.files_in, "bytes_in": self.bytes_in,
                "groups": [{"partition": dict(g.partition), "files": len(g.file_ids), "rows": g.rows, "bytes": g.bytes,
                            "deleted_rows": g.deleted_rows, "quarantine_id": g.quarantine_id} for g in self.groups]}


def plan_compaction(table: Table, target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
                    partitions: Iterable[Mapping[str, Any]] | None = None, small_fraction: float = 0.75,
                    sort_by: Sequence[str] | None = None, layout: str | None = None) -> CompactionPlan:
    """Bin-pack, per partition, the files below ``small_fraction * target`` (and every file
    holding deleted rows, which must be rewritten to purge them) into groups of about
    ``target_file_bytes``. A group of one file without deletes is left alone, and so are
    appends a live follower has not read yet.

    With ``sort_by``, a file whose catalog entry is not sorted by that key
    (:meth:`DataFile.sorted_by`) is rewritten whatever its size, alone if it must be: asking
    for the clustering must not leave a table appended as one large file as it was. Likewise
    with ``layout="shuffled"`` for a file not written in that layout (:attr:`DataFile.shuffled`).

    Files held by an open quarantine are left alone, except those holding deleted rows: an
    erasure must reach the disk whatever happens to the quarantine, so they are rewritten,
    per quarantine, into files that stay in it (see :attr:`CompactionGroup.quarantine_id`).
    """
    check_layout(layout, sort_by)
    sid = table.current_snapshot_id
    every = table.catalog.files(table.name, sid, include_quarantined=True)
    files = [f for f in every if f.visible_from is not None and f.visible_from <= sid]
    held = [f for f in every if f.visible_from is None or f.visible_from > sid]
    # Appends a follower (SampleDataset(follow=True)) has not read yet stay as they are, so it
    # reads them, and deletes of their rows, exactly as committed; they are merged once every
    # follower has moved past them.
    watermark = table.catalog.follow_watermark(table.name)
    if watermark is not None:
        files = [f for f in files if not (f.visible_from > watermark and f.added_by in ("append", "stream-append"))]
    dvs = table.catalog.deleted_positions(table.name, sid, [f.file_id for f in files + held])
    wanted = None if partitions is None else {partition_key(p) for p in partitions}
    # Files not in the order asked for ("unsorted"), rewritten whatever their size.
    unsorted = {f.file_id for f in files
                if (sort_by and not f.sorted_by(sort_by)) or (layout == "shuffled" and not f.shuffled)}
    by_part: dict[tuple[str, int], list[Any]] = {}
    for f in files:
        key = f.partition_key
        if wanted is not None and key not in wanted:
            continue
        if f.file_bytes < small_fraction * target_file_bytes or f.file_id in dvs or f.file_id in unsorted:
            by_part.setdefault((key, 0), []).append(f)
    for f in held:
        if f.file_id in dvs and (wanted is None or f.partition_key in wanted):
            by_part.setdefault((f.partition_key, f.quarantine_id), []).append(f)
    groups = []
    for (key, qid), fs in sorted(by_part.items()):
        bins: list[list[Any]] = []
        sizes: list[int] = []
        for f in sorted(fs, key=lambda f: -f.file_bytes):  # first fit decreasing
            for i, size in enumerate(sizes):
                if size + f.file_bytes <= target_file_bytes:
                    bins[i].append(f)
                    sizes[i] += f.file_bytes
                    break
            else:
                bins.append([f])
                sizes.append(f.file_bytes)
        for b in bins:
            deleted = sum(len(dvs.get(f.file_id, ())) for f in b)
            if len(b) < 2 and not deleted and b[0].file_id not in unsorted:
                continue
            b.sort(key=lambda f: f.file_id)  # keep commit order inside the new file
            groups.append(CompactionGroup(json.loads(key), tuple(f.file_id for f in b), tuple(f.path for f in b),
                                          sum(f.num_rows for f in b) - deleted, sum(f.file_bytes for f in b), deleted,
                                          qid or None))
    return CompactionPlan(table.name, sid, target_file_bytes, tuple(groups))

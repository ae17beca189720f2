"""What every catalog backend computes and says alike, whatever database holds the rows.

The backends differ in how they store, lock and read; these functions are the part of the
protocol that is the same on all of them (which removed files no snapshot needs, a commit's
summary, deleted positions merged across snapshots) and the messages of the errors the
interface defines, so that SQLite and PostgreSQL catalogs answer in the same words.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import numpy as np

from ..errors import CatalogError, CommitConflict, SnapshotNotFound
from .base import QUARANTINE_ACTIONS, Quarantine

__all__ = ["translated", "check_version", "changed_properties", "unreferenced", "commit_summary", "merge_positions", "shown_ids", "readers_refusal", "missing_tag",
           "tag_taken", "not_retained", "late_deletes", "removed_since", "replaced_since",
           "visible_clause", "quarantine_action", "quarantine_groups", "no_open_quarantine", "quarantine_of",
           "QUARANTINE_COLS", "held_summary", "resolution_of",
           "resolved_summary", "require_open_quarantine", "HELD", "joined_quarantines", "refresh_quarantine_sql",
           "held_counts_sql"]


_F = TypeVar("_F", bound=Callable[..., Any])


def translated(driver_error: type[BaseException]) -> Callable[[_F], _F]:
    """A decorator raising every ``driver_error`` of a backend's method as the
    :class:`CatalogError` its ``self._error(exc, doing)`` makes (naming the catalog), so
    callers and the CLI see one exception tree and an actionable message."""

    def decorate(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except driver_error as exc:
                raise self._error(exc, fn.__name__) from exc

        return wrapper  # type: ignore[return-value]

    return decorate


def check_version(version: str | None, known: Sequence[str], current: str, where: str,
                  refuse: Callable[[str], CatalogError]) -> str:
    """``version`` if this samplestore reads it; else the error to raise: "upgrade" for a
    newer one, ``refuse(...)`` for none or an unknown one."""
    if version is None:
        raise refuse("its 'meta' table holds no schema_version")
    if version not in known:
        if version.isdigit() and int(version) > int(current):
            raise CatalogError(
                f"the catalog {where} has schema_version {version}, written by a newer samplestore; this "
                f"one reads versions {list(known)}. Upgrade samplestore to open this store")
        raise refuse(f"an unknown schema_version {version!r}")
    return version


def changed_properties(name: str, stored: str, updates: Mapping[str, Any], remove: Iterable[str]) -> dict[str, Any]:
    """A table's properties (``stored``, JSON) with ``updates`` set and ``remove`` dropped.

    Raises:
        CatalogError: an update is not a JSON value.
    """
    try:
        json.dumps(dict(updates))
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"properties of table {name!r} must be JSON values; found {dict(updates)!r} ({exc})") from exc
    props = json.loads(stored)
    props.update(updates)
    for key in remove:
        props.pop(key, None)
    return props


def unreferenced(rows: Iterable[tuple[int, str, int, int]], pinned: Iterable[int],
                 since: int | None) -> list[tuple[int, str]]:
    """(file id, path) of the removed files no pinned snapshot reads.

    Args:
        rows: (file id, path, added snapshot, removed snapshot) of the removed files.
        pinned: retained snapshots and those live leases pin.
        since: the lowest snapshot of live keep-later leases (a follower keeps every file
            removed after it), or None.
    """
    pins = np.array(sorted(set(pinned)), dtype=np.int64)
    out = []
    for fid, path, added, removed in rows:
        if since is not None and removed > since:
            continue
        # Live in snapshot s iff added <= s < removed.
        lo = np.searchsorted(pins, added, side="left")
        if lo >= len(pins) or pins[lo] >= removed:
            out.append((fid, path))
    return out


def commit_summary(previous: str | None, *, added_files: int, added_rows: int, removed_files: int, removed_rows: int,
                   deleted_rows: int, extra: Mapping[str, Any] | None, held_deleted_rows: int = 0) -> dict[str, Any]:
    """A snapshot's summary: what the commit changed, the running totals from the parent's
    summary (``previous``, its JSON; None before the first commit), then the caller's keys.

    The counts and totals are of visible files; ``held_deleted_rows`` of the ``deleted_rows``
    were in files held by open quarantines, so they leave the visible total as it is (a
    release adds the rows still live)."""
    prev = json.loads(previous) if previous else {"total_rows": 0, "total_files": 0}
    return {
        "added_files": added_files, "added_rows": added_rows,
        "removed_files": removed_files, "removed_rows": removed_rows,
        "total_files": prev.get("total_files", 0) + added_files - removed_files,
        "deleted_rows": deleted_rows,
        "total_rows": prev.get("total_rows", 0) + added_rows - removed_rows - (deleted_rows - held_deleted_rows),
        **dict(extra or {}),
    }


def merge_positions(rows: Iterable[tuple[int, Any]], where: str) -> dict[int, np.ndarray]:
    """Deleted positions per file from (file id, raw little-endian int64 bytes) rows, merged
    across snapshots into sorted, distinct arrays.

    Raises:
        CatalogError: a blob is not a whole number of int64 (``where`` names the catalog).
    """
    out: dict[int, list[np.ndarray]] = {}
    for fid, blob in rows:
        blob = bytes(blob)
        if len(blob) % 8:
            raise CatalogError(f"catalog {where}: the deleted positions of file {fid} are {len(blob)} bytes, not a "
                               f"whole number of int64; the catalog is damaged")
        out.setdefault(fid, []).append(np.frombuffer(blob, dtype="<i8"))
    return {k: (v[0] if len(v) == 1 else np.unique(np.concatenate(v))) for k, v in out.items()}


def shown_ids(ids: Sequence[int]) -> list:
    """Snapshot ids for a message (a long list elided)."""
    ids = list(ids)
    return ids if len(ids) <= 20 else ids[:5] + ["..."] + ids[-10:]


def readers_refusal(name: str, where: str, readers: Sequence[tuple[str, int, float]]) -> CatalogError:
    """Why a table being read is not dropped: (owner, snapshot, seconds left) of each reader."""
    shown = "; ".join(f"{owner or '(no owner recorded)'} on snapshot {sid}" for owner, sid, _ in readers[:10])
    more = f" and {len(readers) - 10} more" if len(readers) > 10 else ""
    wait = max(0.0, max(r[2] for r in readers))
    return CatalogError(
        f"table {name!r} in {where} is being read: {len(readers)} live reader lease(s): {shown}{more}. "
        f"Stop those readers (their leases lapse within {wait:.0f} s after they stop renewing), "
        f"or drop with force=True to pull the table from under them")


def missing_tag(name: str, tag: str, names: Sequence[str]) -> SnapshotNotFound:
    """No such tag: the message lists the table's tags."""
    shown = list(names) if len(names) <= 30 else list(names[:30]) + [f"... ({len(names)} in all)"]
    return SnapshotNotFound(f"table {name!r} has no tag {tag!r}; tags: {shown}")


def tag_taken(name: str, tag: str, snapshot_id: int) -> CatalogError:
    return CatalogError(
        f"table {name!r} has a tag {tag!r} already (on snapshot {snapshot_id}); choose another name, drop it "
        f"first (table.untag / `samplestore tag ROOT {name} --delete {tag}`) or move it with replace=True")


def not_retained(name: str, snapshot_id: int, retained: Sequence, current: int, tag: str | None = None
                 ) -> SnapshotNotFound:
    """A snapshot to lease (or, with ``tag``, to tag) is not retained."""
    if tag is not None:
        return SnapshotNotFound(
            f"cannot tag snapshot {snapshot_id} of table {name!r} as {tag!r}: it is not retained (expired, or "
            f"never committed); retained snapshots: {retained} (current: {current})")
    return SnapshotNotFound(
        f"cannot lease snapshot {snapshot_id} of table {name!r}: it is not retained (expired, or never "
        f"committed); retained snapshots: {retained}. Plan again on the current snapshot {current}")


def late_deletes(operation: str, name: str, file_ids: Sequence[int], planned_at: int) -> CommitConflict:
    return CommitConflict(
        f"{operation} on table {name!r} lost a race: rows of file(s) {list(file_ids)[:10]} were "
        f"deleted after snapshot {planned_at}, when this commit was planned; re-plan and retry")


def removed_since(operation: str, name: str, gone: Sequence[int], parent: int) -> CommitConflict:
    return CommitConflict(
        f"{operation} on table {name!r} lost a race: file(s) {list(gone)[:10]} were removed by a commit "
        f"after this one was planned (snapshot {parent} is current); re-plan and retry")


def replaced_since(name: str, gone: Sequence[int]) -> CommitConflict:
    return CommitConflict(f"delete on table {name!r} lost a race: file(s) {list(gone)[:10]} were replaced; "
                          f"re-plan and retry")


# -- quarantine ---------------------------------------------------------------------------------
def visible_clause(placeholder: str, prefix: str = "") -> str:
    """SQL: the file (columns of ``prefix``, e.g. ``"f."``) is not held by an open quarantine
    as of the snapshot in ``placeholder``."""
    return f"({prefix}quarantine_id IS NULL OR {prefix}released_snapshot <= {placeholder})"


def quarantine_action(action: str) -> str:
    """The snapshot operation of a quarantine ``action``; CatalogError for an unknown one."""
    if action not in QUARANTINE_ACTIONS:
        raise CatalogError(f"a quarantine is resolved by one of {sorted(QUARANTINE_ACTIONS)}; found {action!r}")
    return QUARANTINE_ACTIONS[action]


def quarantine_groups(add: Sequence[Any], quarantine: Mapping[str, Any] | None) -> dict[str, list[int]]:
    """Indexes into ``add`` of the files each quarantined partition key holds back.

    Raises:
        CatalogError: a key names no partition of the added files (nothing would be held back).
    """
    groups: dict[str, list[int]] = {}
    for key in quarantine or {}:
        groups[key] = [i for i, f in enumerate(add) if f.partition_key == key]
        if not groups[key]:
            raise CatalogError(f"quarantine of partition {key} holds no added file; the commit adds files of "
                               f"partitions {sorted({f.partition_key for f in add})[:10]}")
    return groups


def no_open_quarantine(name: str, quarantine_id: int, row: tuple | None, open_ids: Sequence[int]) -> CatalogError:
    """The error for resolving a quarantine that is not open (``row``: its resolution and
    snapshot when it exists but was resolved)."""
    if row is not None:
        return CatalogError(f"quarantine {quarantine_id} of table {name!r} was {row[0]} already (snapshot {row[1]}); "
                            f"open quarantines: {shown_ids(list(open_ids))}")
    return CatalogError(f"table {name!r} has no quarantine {quarantine_id}; open quarantines: "
                        f"{shown_ids(list(open_ids))} (see `samplestore quarantine ROOT {name}`)")


#: The columns of a quarantines row that :func:`quarantine_of` reads, in order.
QUARANTINE_COLS = ("quarantine_id, partition, violations, files, num_rows, snapshot_id, created_at, resolution, "
                   "resolved_snapshot")


def quarantine_of(row: Sequence[Any]) -> Quarantine:
    """A :class:`Quarantine` from a row of :data:`QUARANTINE_COLS`."""
    return Quarantine(int(row[0]), json.loads(row[1]), tuple(json.loads(row[2])), int(row[3]), int(row[4]),
                      int(row[5]), float(row[6]), row[7], None if row[8] is None else int(row[8]))


def held_summary(add: Sequence[Any], quarantine_of_file: Mapping[int, int],
                 extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's summary keys plus, when a commit held files back, what it held:
    ``quarantined_files``, ``quarantined_rows`` and ``quarantine_ids``."""
    out = dict(extra or {})
    if quarantine_of_file:
        out.update(quarantined_files=len(quarantine_of_file),
                   quarantined_rows=sum(add[i].num_rows for i in quarantine_of_file),
                   quarantine_ids=sorted(set(quarantine_of_file.values())))
    return out


def resolution_of(action: str) -> str:
    """What a quarantine resolved by ``action`` is: ``released`` or ``dropped``."""
    return "released" if action == "release" else "dropped"


def resolved_summary(previous: str | None, action: str, quarantine_id: int, files: int, rows: int) -> dict[str, Any]:
    """The summary of the snapshot that releases (its files and live rows, from
    :func:`held_counts_sql`, become visible: added) or drops (they were never visible: no
    change to the totals) a quarantine; ``released_files`` or ``dropped_files`` says how many
    files it resolved."""
    shown = (files, rows) if action == "release" else (0, 0)
    return commit_summary(previous, added_files=shown[0], added_rows=shown[1], removed_files=0, removed_rows=0,
                          deleted_rows=0, extra={"quarantine_id": quarantine_id,
                                                 f"{resolution_of(action)}_files": files})


def require_open_quarantine(execute: Callable[[str, tuple], Any], mark: str, name: str, quarantine_id: int) -> None:
    """Check, inside a backend's transaction, that table ``name`` has quarantine
    ``quarantine_id`` open; ``execute(sql, args)`` runs a query whose parameters are written
    ``mark`` (the driver's placeholder).

    Raises:
        CatalogError: it does not exist, or was released or dropped (listing the open ones).
    """
    row = execute(f"SELECT resolution, resolved_snapshot FROM quarantines WHERE table_name = {mark} "
                  f"AND quarantine_id = {mark}", (name, quarantine_id)).fetchone()
    if row is None or row[0] is not None:
        open_ids = [r[0] for r in execute(f"SELECT quarantine_id FROM quarantines WHERE table_name = {mark} AND "
                                          f"resolution IS NULL ORDER BY quarantine_id", (name,))]
        raise no_open_quarantine(name, quarantine_id, row, open_ids)


#: SQL: the file (a files row) is held by an open quarantine: not visible now.
HELD = "(quarantine_id IS NOT NULL AND released_snapshot IS NULL)"


def joined_quarantines(execute: Callable[[str, tuple], Any], mark: str, name: str,
                       add: Sequence[Any]) -> dict[int, tuple[int, str]]:
    """Indexes into ``add`` of the files that name a quarantine (a rewrite of held files by
    compaction), with (quarantine id, what the files it holds were added by): such a file
    joins the quarantine, and counts as what the files it replaces were (an append, so a
    follower receives its rows when it is released). Checked inside the commit's transaction.

    Raises:
        CommitConflict: the quarantine is not open (released or dropped since the rewrite
            was planned: re-plan), or not the table's.
        CatalogError: it holds another partition than the file's.
    """
    out: dict[int, tuple[int, str]] = {}
    for qid in sorted({int(f.quarantine_id) for f in add if f.quarantine_id is not None}):
        try:
            require_open_quarantine(execute, mark, name, qid)
        except CatalogError as exc:
            raise CommitConflict(f"{exc}; files rewritten for it cannot join it: re-plan and retry") from exc
        held = execute(f"SELECT partition FROM quarantines WHERE quarantine_id = {mark}", (qid,)).fetchone()[0]
        added_by = execute(f"SELECT MIN(added_by) FROM files WHERE table_name = {mark} AND quarantine_id = {mark}",
                           (name, qid)).fetchone()[0] or "append"
        for i, f in enumerate(add):
            if f.quarantine_id is not None and int(f.quarantine_id) == qid:
                if f.partition_key != held:
                    raise CatalogError(f"file {f.path!r} of partition {f.partition_key} cannot join quarantine {qid} "
                                       f"of table {name!r}: it holds partition {held}")
                out[i] = (qid, added_by)
    return out


def refresh_quarantine_sql(mark: str) -> str:
    """SQL setting a quarantine's ``files`` and ``num_rows`` (parameter: its id) to what its
    live files hold, after a commit rewrote some of them."""
    live = "FROM files f WHERE f.quarantine_id = quarantines.quarantine_id AND f.removed_snapshot IS NULL"
    return (f"UPDATE quarantines SET files = (SELECT COUNT(*) {live}), "
            f"num_rows = (SELECT COALESCE(SUM(f.num_rows), 0) {live}) WHERE quarantine_id = {mark}")


def held_counts_sql(mark: str) -> str:
    """SQL: (files, live rows) of a quarantine's live files, deleted rows left out
    (parameters: table, quarantine id, table, quarantine id)."""
    return (f"SELECT COUNT(*), COALESCE(SUM(f.num_rows), 0) - COALESCE((SELECT SUM(d.count) FROM deletes d "
            f"JOIN files g ON g.file_id = d.file_id WHERE g.table_name = {mark} AND g.quarantine_id = {mark} "
            f"AND g.removed_snapshot IS NULL), 0) FROM files f WHERE f.table_name = {mark} "
            f"AND f.quarantine_id = {mark} AND f.removed_snapshot IS NULL")

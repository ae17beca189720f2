"""The catalog interface: tables, snapshots, data files and their statistics.

A catalog records every committed change as one snapshot. Backends (embedded SQLite now,
PostgreSQL for many hosts later) implement :class:`Catalog`; table code talks only to it.
"""

from __future__ import annotations

import abc
import datetime as _dt
import json
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..errors import CatalogError
from ..schema import Schema

__all__ = ["Catalog", "TableMeta", "Snapshot", "DataFile", "ColumnStats", "Tag", "RetentionPolicy",
           "validate_table_name", "validate_tag_name", "RETENTION_PROPERTY", "DEFAULT_RETENTION_SECONDS"]

# fullmatch, not ``$``: ``$`` also matches before a final newline, which let "t\n" through.
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,127}")


def validate_table_name(name: str) -> str:
    """Return ``name`` if it is a valid table name; :class:`CatalogError` otherwise."""
    if not isinstance(name, str) or not _TABLE_NAME.fullmatch(name):
        raise CatalogError(
            f"table name must start with a letter or '_' and hold only letters, digits, '_' and '-' "
            f"(no path separators, no '..'), at most 128 characters; found {name!r}"
        )
    return name


def validate_tag_name(name: str) -> str:
    """Return ``name`` if it is a valid tag name (the rules of table names, so a tag never
    looks like a snapshot id); :class:`CatalogError` otherwise."""
    if not isinstance(name, str) or not _TABLE_NAME.fullmatch(name):
        raise CatalogError(
            f"tag name must start with a letter or '_' and hold only letters, digits, '_' and '-', at most 128 "
            f"characters (e.g. 'train-2026-11-20'); found {name!r}"
        )
    return name


#: The table property that holds a table's retention policy (a JSON object).
RETENTION_PROPERTY = "retention"
#: How long snapshots are kept by default: a week of time travel.
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Which snapshots expiry keeps: the newest ``retain_last`` and every one younger than
    ``older_than`` seconds (the union of both). ``None`` switches a rule off. Whatever the
    policy, expiry never drops the current snapshot, a tagged one or one a reader leases.

    The default (a table that never set one) keeps a week of snapshots and at least the last.
    """

    retain_last: int | None = 1
    older_than: float | None = DEFAULT_RETENTION_SECONDS

    def __post_init__(self) -> None:
        if self.retain_last is not None:
            n = self.retain_last
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
                raise ValueError(f"retain_last must be an int >= 1 or None (keep by age alone); found {n!r}")
            object.__setattr__(self, "retain_last", int(n))
        if self.older_than is not None:
            age = self.older_than
            if isinstance(age, _dt.timedelta):
                age = age.total_seconds()
            if isinstance(age, bool) or not isinstance(age, numbers.Real) or not math.isfinite(age) or age < 0:
                raise ValueError(f"older_than must be seconds >= 0 (or a timedelta), or None (keep by count alone); "
                                 f"found {self.older_than!r}")
            object.__setattr__(self, "older_than", float(age))

    def to_dict(self) -> dict[str, Any]:
        """The policy as stored in the table's properties."""
        return {"retain_last": self.retain_last, "older_than": self.older_than}

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> "RetentionPolicy":
        """The policy a table's properties hold (the default if they hold none).

        Raises:
            CatalogError: the stored policy is not one this version understands.
        """
        raw = properties.get(RETENTION_PROPERTY)
        if raw is None:
            return cls()
        try:
            return cls(retain_last=raw["retain_last"], older_than=raw["older_than"])
        except (TypeError, KeyError, ValueError) as exc:
            raise CatalogError(
                f"the table's retention property {raw!r} is not a policy ({exc}); expected "
                f"{{'retain_last': int or null, 'older_than': seconds or null}}. Set it again with "
                f"table.set_retention(...) or `samplestore retention`") from exc


@dataclass(frozen=True, slots=True)
class Tag:
    """A name pinned to one snapshot of a table: expiry keeps the snapshot while the tag exists."""

    name: str
    snapshot_id: int
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "snapshot_id": self.snapshot_id, "created_at": self.created_at}


@dataclass(frozen=True, slots=True)
class TableMeta:
    """A table's current definition."""

    name: str
    schema: Schema
    partition_by: tuple[str, ...]
    current_snapshot: int
    created_at: float
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One committed state of a table.

    Attributes:
        snapshot_id: 1, 2, ... in commit order (0 is the empty table before any commit).
        parent_id: the snapshot this one was committed on top of.
        operation: ``append``, ``stream-append``, ``replace``, ``delete`` or ``schema``.
        summary: counts (added/removed files and rows, totals).
        writer_id / commit_token: what a streaming writer stored to resume exactly once.
    """

    snapshot_id: int
    parent_id: int | None
    created_at: float
    operation: str
    summary: Mapping[str, Any]
    schema: Schema
    writer_id: str | None = None
    commit_token: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "parent_id": self.parent_id,
            "created_at": self.created_at,
            "operation": self.operation,
            "summary": dict(self.summary),
            "writer_id": self.writer_id,
            "commit_token": self.commit_token,
        }


@dataclass(frozen=True, slots=True)
class ColumnStats:
    """Statistics of one column in one file.

    ``missing`` counts what a data-quality view calls missing: nulls for scalars, empty
    lists for sparse/sequence features, NaN values for dense/embedding/label features.
    ``extra`` holds kind-specific figures: ``lengths`` (a histogram of list lengths as
    ``[[length, count], ...]``) and ``missing_by_dim`` for dense vectors.
    """

    nulls: int
    missing: int
    values: int
    min: float | int | None
    max: float | int | None
    bytes: int
    extra: Mapping[str, Any] = field(default_factory=dict)


def partition_key(values: Mapping[str, Any]) -> str:
    """The one text form of a partition's values: the catalog stores it, and code that groups
    files by partition compares it (sorted JSON, so the order of the keys does not matter)."""
    return json.dumps(dict(values), sort_keys=True)


@dataclass(frozen=True, slots=True)
class DataFile:
    """One data file of a table."""

    path: str  # relative to the table's directory
    partition: Mapping[str, Any]
    num_rows: int
    file_bytes: int
    num_row_groups: int
    file_id: int | None = None
    added_snapshot: int | None = None
    removed_snapshot: int | None = None
    stats: Mapping[str, ColumnStats] = field(default_factory=dict)
    row_group_size: int = 0  # rows per row group (all but the last); 0 = unknown
    added_by: str = ""  # operation of the commit that added the file (append, replace, ...)

    def row_group_rows(self) -> list[int]:
        """Rows of each row group, derived from the file's row-group size."""
        size = self.row_group_size or self.num_rows
        full, rest = divmod(self.num_rows, size) if size else (0, 0)
        return [size] * full + ([rest] if rest else [])

    @property
    def partition_key(self) -> str:
        """:func:`partition_key` of this file's partition."""
        return partition_key(self.partition)


class Catalog(abc.ABC):
    """What table code needs from a metadata store. Every mutating call is one transaction."""

    @abc.abstractmethod
    def create_table(self, name: str, schema: Schema, partition_by: Iterable[str],
                     properties: Mapping[str, Any] | None = None) -> TableMeta:
        """Create a table; TableExists if the name is taken."""

    @property
    @abc.abstractmethod
    def catalog_id(self) -> str:
        """A random id fixed when the catalog was made: a table's folder records it, so that
        garbage collection never treats files another catalog wrote as its own."""

    @abc.abstractmethod
    def drop_table(self, name: str, *, force: bool = False) -> None:
        """Remove a table and everything the catalog records for it (snapshots, files,
        statistics, deletes, leases, commit tokens), in one transaction.

        Raises:
            TableNotFound: no such table.
            CatalogError: a live reader lease pins one of its snapshots (the message names
                each reader and snapshot), unless ``force``.
        """

    @abc.abstractmethod
    def set_table_properties(self, name: str, properties: Mapping[str, Any], *,
                             remove: Iterable[str] = ()) -> TableMeta:
        """Set the given properties of a table (JSON values; the other keys stay as they are)
        and remove the keys in ``remove``, in one transaction; returns the new definition.

        Raises:
            TableNotFound: no such table.
        """

    @abc.abstractmethod
    def table_names(self) -> list[str]:
        """Names of all tables, sorted."""

    @abc.abstractmethod
    def load_table(self, name: str) -> TableMeta:
        """A table's definition; TableNotFound lists the tables."""

    @abc.abstractmethod
    def snapshots(self, name: str) -> list[Snapshot]:
        """Retained snapshots, oldest first."""

    @abc.abstractmethod
    def snapshot(self, name: str, snapshot_id: int) -> Snapshot:
        """One snapshot; SnapshotNotFound lists what exists."""

    @abc.abstractmethod
    def files(self, name: str, snapshot_id: int, *, with_stats: Iterable[str] | None = None) -> list[DataFile]:
        """Live files of a snapshot (with statistics of the named columns)."""

    @abc.abstractmethod
    def commit(
        self,
        name: str,
        operation: str,
        *,
        add: Iterable[DataFile] = (),
        remove: Iterable[int] = (),
        schema: Schema | None = None,
        writer_id: str | None = None,
        commit_token: str | None = None,
        summary: Mapping[str, Any] | None = None,
        deletes: Mapping[int, Any] | None = None,
        planned_at: int | None = None,
    ) -> Snapshot:
        """Atomically add and remove files, record deletes (row positions per file) and/or
        change the schema, as a new snapshot.

        Raises:
            CommitConflict: a file in ``remove`` or ``deletes`` is no longer live, or (with
                ``planned_at``) rows of those files were deleted after that snapshot; nothing
                was changed and the caller may re-plan and retry.
        """

    @abc.abstractmethod
    def last_commit_token(self, name: str, writer_id: str) -> str | None:
        """The commit token a writer stored last, or None.

        Kept apart from the snapshots, so that it outlives their expiry: a restarted
        streaming writer must find it however many snapshots were expired since.
        """

    @abc.abstractmethod
    def snapshot_as_of(self, name: str, when: float) -> Snapshot:
        """The last snapshot committed at or before ``when`` (epoch seconds)."""

    @abc.abstractmethod
    def appended_files(self, name: str, after: int) -> list[DataFile]:
        """Files added by appends (``append``, ``stream-append``) in snapshots after ``after``,
        including files a later commit removed that the catalog still records."""

    @abc.abstractmethod
    def all_file_paths(self, name: str) -> list[tuple[int, str, int | None]]:
        """(file id, path, removed snapshot) of every file the catalog knows for a table."""

    # -- deletes ---------------------------------------------------------------------------
    @abc.abstractmethod
    def deleted_positions(self, name: str, snapshot_id: int, file_ids: Iterable[int] | None = None) -> dict[int, Any]:
        """Deleted row positions (sorted int64 arrays) per file, as of a snapshot."""

    # -- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    def acquire_lease(self, name: str, snapshot_id: int, ttl: float, owner: str = "", keep_later: bool = False) -> str:
        """Pin a snapshot (0: a writer's in-progress marker) for ``ttl`` seconds; returns its id.

        With ``keep_later`` (a follower of appends) the lease also keeps every file added
        after the snapshot, even one a later commit removed, until the lease is gone.

        Raises:
            TableNotFound: no such table.
            SnapshotNotFound: ``snapshot_id`` is not 0 and no longer retained (expired after
                the caller chose it): checked in the transaction that records the lease, so
                a granted lease always pins a snapshot whose files are still there.
        """

    @abc.abstractmethod
    def renew_lease(self, lease_id: str, ttl: float) -> bool:
        """Extend a lease; False if it had lapsed."""

    @abc.abstractmethod
    def release_lease(self, lease_id: str) -> None:
        """Drop a lease."""

    @abc.abstractmethod
    def follow_watermark(self, name: str) -> int | None:
        """The lowest snapshot of the table's live keep-later leases (None: no follower).
        Compaction leaves appends after it alone until every follower has read them."""

    @abc.abstractmethod
    def appends_replaced_upto(self, name: str) -> int:
        """The newest snapshot whose appended files a commit (compaction) has since removed;
        0 when none. Kept for the table's life: a follower resuming after snapshot ``s`` can
        read every append after ``s`` as it was only while this is at most ``s``."""

    @abc.abstractmethod
    def live_leases(self, name: str) -> list[tuple[str, int, float, str]]:
        """(lease id, snapshot, expires at, owner) of a table's unexpired leases."""

    @abc.abstractmethod
    def expire_snapshots(self, name: str, keep: Iterable[int], upto: int | None = None) -> list[int]:
        """Forget snapshots not in ``keep`` (never the current, a leased or a tagged one, nor
        one after ``upto``: a caller that chose ``keep`` from a listing passes the newest id it
        saw, so snapshots committed since are not dropped unseen); return those forgotten.
        Leases and tags are read in the transaction that drops the snapshots."""

    @abc.abstractmethod
    def unreferenced_files(self, name: str) -> list[tuple[int, str]]:
        """Files live in no retained and no leased snapshot: (file id, path)."""

    @abc.abstractmethod
    def forget_files(self, name: str, file_ids: Iterable[int]) -> None:
        """Drop removed files (already deleted from disk) and their stats and deletes."""

    # -- tags ----------------------------------------------------------------------------
    @abc.abstractmethod
    def create_tag(self, name: str, tag: str, snapshot_id: int, *, replace: bool = False) -> Tag:
        """Name a retained snapshot of a table; expiry keeps it until the tag is dropped.

        Raises:
            TableNotFound: no such table.
            CatalogError: ``tag`` is not a valid name, or the table has that tag already (on
                any snapshot) and ``replace`` is false.
            SnapshotNotFound: the snapshot is not retained (checked in the transaction that
                records the tag, so a tag always names a snapshot whose files are kept).
        """

    @abc.abstractmethod
    def drop_tag(self, name: str, tag: str) -> Tag:
        """Remove a tag (its snapshot becomes subject to the retention policy again); returns it.

        Raises:
            TableNotFound: no such table.
            SnapshotNotFound: the table has no such tag (the message lists its tags).
        """

    @abc.abstractmethod
    def tags(self, name: str) -> list[Tag]:
        """A table's tags, sorted by name."""

    @abc.abstractmethod
    def resolve_tag(self, name: str, tag: str) -> int:
        """The snapshot a tag names.

        Raises:
            TableNotFound: no such table.
            SnapshotNotFound: the table has no such tag (the message lists its tags).
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release this process's connections."""

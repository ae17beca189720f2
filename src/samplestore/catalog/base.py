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
from typing import Any, Iterable, Mapping, Sequence

from ..errors import CatalogError
from ..schema import Schema

__all__ = ["Catalog", "TableMeta", "Snapshot", "DataFile", "ColumnStats", "Tag", "RetentionPolicy", "Quarantine",
           "validate_table_name", "validate_tag_name", "RETENTION_PROPERTY", "QUARANTINE_ACTIONS", "DEFAULT_RETENTION_SECONDS",
           "SHUFFLED_SORT_KEY"]

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
class Quarantine:
    """Files of one partition that a commit held back because they broke an expectation
    whose action is ``quarantine``: committed, but invisible to readers until released.

    Attributes:
        quarantine_id: the id ``release``/``drop`` take (unique in the catalog).
        partition: the partition's values.
        violations: what was broken, as the commit recorded it (JSON objects: the rule,
            column, measured value, bound, message).
        files, rows: what the quarantine holds.
        snapshot_id, created_at: the commit that made it.
        resolution: None while open, then ``"released"`` or ``"dropped"``.
        resolved_snapshot: the snapshot that released or dropped it.
    """

    quarantine_id: int
    partition: Mapping[str, Any]
    violations: tuple[Mapping[str, Any], ...]
    files: int
    rows: int
    snapshot_id: int
    created_at: float
    resolution: str | None = None
    resolved_snapshot: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.quarantine_id, "partition": dict(self.partition),
                "violations": [dict(v) for v in self.violations], "files": self.files, "rows": self.rows,
                "snapshot_id": self.snapshot_id, "created_at": self.created_at, "resolution": self.resolution,
                "resolved_snapshot": self.resolved_snapshot}


#: How a quarantine is resolved, and the operation of the snapshot that does it.
QUARANTINE_ACTIONS = {"release": "release", "drop": "drop-quarantine"}


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
    ``[[length, count], ...]``), ``missing_by_dim`` for dense vectors and ``sum_by_dim`` (the
    float64 sum of the non-NaN values per slot) for dense, label and embedding vectors.
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


#: The sort key of a file whose rows compaction wrote in a uniformly random order: stored
#: like any sort key, so that no catalog change was needed, and a name no column can have
#: (column names start with a letter or ``_``), so that ``sorted_by`` a column is never true.
SHUFFLED_SORT_KEY = ("@shuffled",)


@dataclass(frozen=True, slots=True)
class DataFile:
    """One data file of a table.

    A backend stores every field given to :meth:`Catalog.commit` and returns it unchanged
    from :meth:`Catalog.files` and :meth:`Catalog.appended_files` (``file_id``,
    ``added_snapshot``, ``removed_snapshot`` and ``added_by`` it assigns itself).
    ``quarantine_id`` and ``released_snapshot`` (assigned by the backend) name the quarantine
    a commit put the file in (see :meth:`Catalog.commit`) and the snapshot that released it;
    both None for a file never quarantined.
    ``sort_key`` is the column names the file's rows are sorted by, ascending and
    lexicographically (``()``: no known order, the default, and what a file committed before
    a backend stored the key reads as); a backend stores it as an ordered list of strings, in
    one column or field of its file record. :data:`SHUFFLED_SORT_KEY` marks a file whose rows
    compaction wrote in a uniformly random order (``layout="shuffled"``).
    """

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
    sort_key: tuple[str, ...] = ()  # columns the rows are sorted by (compaction's sort_by); () = unknown
    quarantine_id: int | None = None  # the quarantine that holds (or held) the file; None: never quarantined
    released_snapshot: int | None = None  # the snapshot that released its quarantine (None: open, or none)

    @property
    def visible_from(self) -> int | None:
        """The snapshot from which readers see the file: the one that added it, or for a
        quarantined file the one that released it (None while its quarantine is open)."""
        if self.quarantine_id is None:
            return self.added_snapshot
        return self.released_snapshot

    def sorted_by(self, key: Sequence[str]) -> bool:
        """Whether the file's rows are in ``key`` order (its sort key starts with ``key``)."""
        key = tuple(key)
        return bool(key) and tuple(self.sort_key[:len(key)]) == key

    @property
    def shuffled(self) -> bool:
        """Whether compaction wrote the file's rows in a uniformly random order."""
        return self.sort_key == SHUFFLED_SORT_KEY

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
    """What table, compaction, torch and CLI code need from a metadata store: the one seam
    between them and a backend (embedded SQLite now, PostgreSQL for many hosts later).

    Nothing outside ``catalog/`` uses more of a catalog than this class declares; a new
    backend is done when it passes the conformance class in
    ``tests/table/test_catalog_conformance.py`` (one fixture parameter there). Backends are
    chosen by :func:`~samplestore.catalog.open_catalog`.

    Contract shared by every method:

    - **Atomic.** Every mutating call is one transaction, serialised against the mutations of
      every other process and host using the catalog: it happens wholly or not at all, and a
      reader never sees part of it. A multi-query read (``files``, ``unreferenced_files``)
      reads one consistent state.
    - **One exception tree.** Failures of the backend itself (its driver, a lock held too
      long, a broken connection, a damaged database) are raised as :class:`CatalogError`
      naming the catalog (:attr:`location`) and chained to the driver's exception, never as
      the driver's own type: callers catch ``SampleStoreError`` and ``OSError`` only.
    - **Process-safe.** A catalog object may be used from several threads, and from a child
      process after ``fork`` (a DataLoader worker): connections are per process and thread.
    - Table names follow :func:`validate_table_name`; a method given an unknown table raises
      :class:`TableNotFound` (listing the tables) unless its docstring says otherwise.
    - Snapshot ids count 1, 2, ... per table; 0 is the empty table before the first commit.
    """

    # -- the catalog ---------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def catalog_id(self) -> str:
        """A random id fixed when the catalog was made, the same from every process and
        every later opening: a table's folder records it, so that garbage collection never
        treats files another catalog wrote as its own.

        Raises:
            CatalogError: the catalog has no id (it is damaged).
        """

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the catalog lives, for messages and the CLI: a file path, or a URI without
        credentials. Never used to reach the catalog (that is :func:`open_catalog`'s job)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release this process's connections (this thread's, at least). The catalog stays
        usable: a later call opens a new connection."""

    # -- tables --------------------------------------------------------------------------
    @abc.abstractmethod
    def create_table(self, name: str, schema: Schema, partition_by: Iterable[str],
                     properties: Mapping[str, Any] | None = None) -> TableMeta:
        """Create a table at snapshot 0, in one transaction; returns its definition.

        Raises:
            CatalogError: ``name`` is not a valid table name.
            TableExists: the name is taken (two processes creating it at once: one wins).
        """

    @abc.abstractmethod
    def drop_table(self, name: str, *, force: bool = False) -> None:
        """Remove a table and everything the catalog records for it (snapshots, files,
        statistics, deletes, leases, commit tokens, tags), in one transaction: a table made
        again under the name starts with none of it.

        Raises:
            TableNotFound: no such table.
            CatalogError: a live reader lease pins one of its snapshots (the message names
                each reader and snapshot), unless ``force``. Writers' leases (snapshot 0) and
                lapsed leases do not count.
        """

    @abc.abstractmethod
    def set_table_properties(self, name: str, properties: Mapping[str, Any], *,
                             remove: Iterable[str] = ()) -> TableMeta:
        """Set the given properties of a table (JSON values; the other keys stay as they are)
        and remove the keys in ``remove`` (absent ones are ignored), in one transaction that
        reads and writes under the write lock, so two processes setting different keys lose
        neither; returns the new definition.

        Raises:
            TableNotFound: no such table.
            CatalogError: a value is not JSON; nothing is changed.
        """

    @abc.abstractmethod
    def table_names(self) -> list[str]:
        """Names of all tables, sorted."""

    @abc.abstractmethod
    def load_table(self, name: str) -> TableMeta:
        """A table's current definition (schema, partition columns, current snapshot,
        creation time, properties).

        Raises:
            TableNotFound: no such table (the message lists the tables).
        """

    # -- snapshots -----------------------------------------------------------------------
    @abc.abstractmethod
    def snapshots(self, name: str) -> list[Snapshot]:
        """The table's retained snapshots, oldest first (empty before the first commit)."""

    @abc.abstractmethod
    def snapshot(self, name: str, snapshot_id: int) -> Snapshot:
        """One retained snapshot.

        Raises:
            SnapshotNotFound: not retained (expired, or never committed); the message lists
                the retained ids.
        """

    @abc.abstractmethod
    def snapshot_as_of(self, name: str, when: float) -> Snapshot:
        """The newest retained snapshot committed at or before ``when`` (epoch seconds): a
        snapshot committed exactly at ``when`` counts.

        Raises:
            SnapshotNotFound: no retained snapshot was committed by then (before the first
                commit, or every such snapshot expired).
        """

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
        quarantine: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    ) -> Snapshot:
        """Atomically add files (with their statistics), remove files by id, record deletes
        (row positions per file id) and/or change the schema, as snapshot ``current + 1``.

        ``quarantine`` maps a partition key (:func:`partition_key`) to the violations (JSON
        objects) that hold back the added files of that partition: each such partition gets a
        new :class:`Quarantine` holding them, and its files are committed quarantined, live
        (expiry and GC keep them) but outside :meth:`files` unless asked, until
        :meth:`resolve_quarantine`. The summary's ``added_files``/``added_rows`` and totals
        count visible files only; ``quarantined_files``, ``quarantined_rows`` and
        ``quarantine_ids`` say what was held back. An added file whose ``quarantine_id``
        names an open quarantine of the table (a compaction rewriting held files to purge
        deleted rows) joins it: held like the files it replaces, counted as what they were
        added by (an append, for :meth:`appended_files` once released), and the quarantine's
        ``files``/``rows`` become what its live files hold. Removed held files and deletes
        of held rows leave the visible totals alone; a release adds the rows still live.

        The snapshot's summary holds ``added_files``, ``added_rows``, ``removed_files``,
        ``removed_rows`` (rows deleted from them before are not counted twice),
        ``deleted_rows`` (distinct new positions) and the running ``total_files`` /
        ``total_rows``, then the caller's ``summary`` keys. Removing appended files (a
        compaction) raises :meth:`appends_replaced_upto`. With ``writer_id`` and
        ``commit_token`` the token is stored for :meth:`last_commit_token` in the same
        transaction, so it becomes visible exactly with the rows it covers.

        Raises:
            TableNotFound: no such table.
            CommitConflict: a file in ``remove`` or ``deletes`` is no longer live (another
                commit removed it), or, with ``planned_at``, rows of those files were deleted
                in a snapshot after ``planned_at``, or an added file names a quarantine that
                is not open. Nothing was changed; the caller re-plans
                and retries. Appends never conflict.
        """

    @abc.abstractmethod
    def last_commit_token(self, name: str, writer_id: str) -> str | None:
        """The commit token the writer ``writer_id`` stored last, or None.

        Kept apart from the snapshots, so that it outlives their expiry: a restarted
        streaming writer must find it however many snapshots were expired since. A commit of
        that writer without a token leaves the stored one as it is.
        """

    # -- files ---------------------------------------------------------------------------
    @abc.abstractmethod
    def files(self, name: str, snapshot_id: int, *, with_stats: Iterable[str] | None = None,
              include_quarantined: bool = False, partitions: Iterable[Mapping[str, Any]] | None = None
              ) -> list[DataFile]:
        """The files live in a snapshot (added at or before it, not removed at or before it),
        in commit order (by file id), read in one consistent state; with ``with_stats`` each
        carries the statistics of those columns (those it has), without, none.

        A quarantined file is visible in a snapshot only if its quarantine was released at or
        before it (so an older snapshot reads as it was); ``include_quarantined`` lists the
        live files of open quarantines too. ``partitions`` (partition values, as
        :attr:`DataFile.partition`) limits the answer, and the statistics read, to the files
        of those partitions (an empty list: none), so a caller interested in a few
        partitions of a large table does not read them all.

        Snapshot 0 has no files. The snapshot is not checked to be retained: a caller reads
        the snapshot it leased, or one it just resolved.
        """

    @abc.abstractmethod
    def appended_files(self, name: str, after: int) -> list[DataFile]:
        """Files added by appends (``append``, ``stream-append``) in snapshots after
        ``after``, in commit order, including files a later commit removed that the catalog
        still records (a follower reads appends as committed). Compaction outputs are not
        appends. A released append counts from the snapshot that released it (its
        :attr:`DataFile.visible_from`; the answer is in that order), and an append of an open
        quarantine not at all. An unknown table has none."""

    @abc.abstractmethod
    def all_file_paths(self, name: str) -> list[tuple[int, str, int | None]]:
        """(file id, path, removed snapshot or None) of every file the catalog records for a
        table, live or removed but not yet forgotten (GC and a writer checking whether its
        failed commit landed ask it). An unknown table has none."""

    @abc.abstractmethod
    def unreferenced_files(self, name: str) -> list[tuple[int, str]]:
        """Removed files no snapshot needs any more: (file id, path) of each file live in no
        retained snapshot, in no snapshot a live lease pins, and not removed after the
        snapshot of a live keep-later lease (a follower's). GC deletes them from disk, then
        calls :meth:`forget_files`. Read in one consistent state.

        Raises:
            TableNotFound: no such table.
        """

    @abc.abstractmethod
    def forget_files(self, name: str, file_ids: Iterable[int]) -> None:
        """Drop the records of removed files (already deleted from disk) with their
        statistics and deletes, in one transaction. Ids of live files, of another table's
        files, or unknown ones are left alone: a live file is never forgotten."""

    # -- quarantine ----------------------------------------------------------------------
    @abc.abstractmethod
    def quarantines(self, name: str, *, resolved: bool = False) -> list[Quarantine]:
        """The table's open quarantines (with ``resolved``, released and dropped ones too), by id.

        Raises:
            TableNotFound: no such table.
        """

    @abc.abstractmethod
    def resolve_quarantine(self, name: str, quarantine_id: int, action: str) -> Snapshot:
        """Release (``"release"``: its files become visible) or drop (``"drop"``: its files are
        removed, for expiry and GC to delete) an open quarantine, as one snapshot (operation
        ``release`` or ``drop-quarantine``).

        Raises:
            TableNotFound: no such table.
            CatalogError: ``action`` is neither; the table has no open quarantine of that id
                (the message lists the open ones). Nothing is changed.

        The snapshot's summary says ``released_files`` or ``dropped_files``; a release adds
        the quarantine's live rows (deleted ones left out) to ``total_rows``.
        """

    # -- deletes -------------------------------------------------------------------------
    @abc.abstractmethod
    def deleted_positions(self, name: str, snapshot_id: int, file_ids: Iterable[int] | None = None) -> dict[int, Any]:
        """Deleted row positions per file as of a snapshot: every delete committed at or
        before ``snapshot_id`` merged, as sorted, distinct int64 numpy arrays; files without
        deleted rows are absent. ``file_ids`` limits the answer to those files (an empty list:
        none). An unknown table has none."""

    # -- leases --------------------------------------------------------------------------
    @abc.abstractmethod
    def acquire_lease(self, name: str, snapshot_id: int, ttl: float, owner: str = "", keep_later: bool = False) -> str:
        """Pin a snapshot (0: a writer's in-progress marker, which pins no files) for ``ttl``
        seconds; returns the new lease's id. While it lives, expiry keeps the snapshot and
        :meth:`unreferenced_files` its files; ``owner`` says who holds it, for messages.

        With ``keep_later`` (a follower of appends) the lease also keeps every file removed
        after the snapshot, and makes :meth:`follow_watermark`; its snapshot need not be
        retained (a follower's position is a snapshot number, not a snapshot row).

        Raises:
            TableNotFound: no such table.
            SnapshotNotFound: a reader's ``snapshot_id`` (not 0, not ``keep_later``) is not
                retained (expired after the caller chose it): checked in the transaction that
                records the lease, so a granted lease always pins a snapshot whose files are
                still there. Nothing is recorded.
        """

    @abc.abstractmethod
    def renew_lease(self, lease_id: str, ttl: float) -> bool:
        """Extend a live lease to ``ttl`` seconds from now; False, changing nothing, when it
        was released or had lapsed (a lapsed lease is never revived: GC may have run)."""

    @abc.abstractmethod
    def release_lease(self, lease_id: str) -> None:
        """Drop a lease (a no-op if it is gone already)."""

    @abc.abstractmethod
    def live_leases(self, name: str) -> list[tuple[str, int, float, str]]:
        """(lease id, snapshot, expires at (epoch seconds), owner) of a table's unexpired
        leases, writers' included. An unknown table has none."""

    @abc.abstractmethod
    def follow_watermark(self, name: str) -> int | None:
        """The lowest snapshot of the table's live keep-later leases (None: no follower).
        Compaction leaves appends after it alone until every follower has read them."""

    @abc.abstractmethod
    def appends_replaced_upto(self, name: str) -> int:
        """The newest snapshot whose appended files a commit (compaction) has since removed;
        0 when none. Kept for the table's life: a follower resuming after snapshot ``s`` can
        read every append after ``s`` as it was only while this is at most ``s``.

        Raises:
            TableNotFound: no such table.
        """

    # -- expiry --------------------------------------------------------------------------
    @abc.abstractmethod
    def expire_snapshots(self, name: str, keep: Iterable[int], upto: int | None = None) -> list[int]:
        """Forget the snapshots not in ``keep``, in one transaction; returns those forgotten,
        in ascending order. Never forgotten: the current snapshot, one a live lease pins, a
        tagged one, or one after ``upto`` (a caller that chose ``keep`` from a listing passes
        the newest id it saw, so snapshots committed since are not dropped unseen). Leases
        and tags are read in the transaction that drops, so one granted after the caller's
        listing still protects its snapshot. Files and commit tokens stay (see
        :meth:`unreferenced_files`, :meth:`last_commit_token`).

        Raises:
            TableNotFound: no such table.
        """

    # -- tags ----------------------------------------------------------------------------
    @abc.abstractmethod
    def create_tag(self, name: str, tag: str, snapshot_id: int, *, replace: bool = False) -> Tag:
        """Name a retained snapshot of a table; expiry keeps it until the tag is dropped.
        Tags are per table.

        Raises:
            TableNotFound: no such table.
            CatalogError: ``tag`` is not a valid name (:func:`validate_tag_name`), or the
                table has that tag already (on any snapshot) and ``replace`` is false.
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
        """A table's tags, sorted by name.

        Raises:
            TableNotFound: no such table.
        """

    @abc.abstractmethod
    def resolve_tag(self, name: str, tag: str) -> int:
        """The snapshot a tag names.

        Raises:
            TableNotFound: no such table.
            SnapshotNotFound: the table has no such tag (the message lists its tags).
        """

"""A table: a schema, partitions and snapshots of data files under one folder of the store."""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.base import (DEFAULT_RETENTION_SECONDS, Catalog, Quarantine, RETENTION_PROPERTY, RetentionPolicy, Snapshot,
                            TableMeta, Tag)
from ..errors import CatalogError, CommitConflict, SchemaError, SnapshotNotFound
from ..schema import Feature, Schema
from .expectations import EXPECTATIONS_PROPERTY, Expectation, expectations_of, parse_expectations
from .maintenance import compact_executor, maintenance
from .scan import DEFAULT_LEASE_SECONDS, Scan
from .writer import DEFAULT_TARGET_FILE_BYTES, StreamingWriter

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Table"]


class Table:
    """A table of training samples. Obtain one from :meth:`Store.create_table` or :meth:`Store.table`."""

    def __init__(self, store: "Store", name: str) -> None:
        self.store = store
        self.name = name
        self._catalog = store.catalog
        #: Where the table's data files and marker are read and written (the store's storage).
        self.storage = store.storage
        self.dir = store.table_dir(name)
        self.data_dir = self.storage.join(self.dir, "data")
        self._catalog.load_table(name)  # raises TableNotFound listing the tables

    def __repr__(self) -> str:
        return f"Table({self.name!r}, root={self.store.root!r})"

    # -- metadata -------------------------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        """The catalog that records this table (the store's): what scans, writers, compaction
        and datasets commit to and read snapshots, files, deletes and leases from."""
        return self._catalog

    def meta(self) -> TableMeta:
        """The table's current definition (schema, partition columns, current snapshot,
        creation time, properties), read from the catalog now.

        Raises:
            TableNotFound: the table was dropped meanwhile.
        """
        return self._catalog.load_table(self.name)

    @property
    def schema(self) -> Schema:
        """The current schema."""
        return self.meta().schema

    @property
    def partition_by(self) -> tuple[str, ...]:
        """The partition columns."""
        return self.meta().partition_by

    @property
    def current_snapshot_id(self) -> int:
        """The id of the current snapshot (0 before the first commit)."""
        return self.meta().current_snapshot

    def snapshots(self) -> list[Snapshot]:
        """Every retained snapshot, oldest first."""
        return self._catalog.snapshots(self.name)

    def snapshot(self, snapshot_id: int | str | None = None) -> Snapshot:
        """One snapshot, by id or tag name (the current one if None); SnapshotNotFound lists
        what exists."""
        if isinstance(snapshot_id, str):
            snapshot_id = self.resolve_snapshot(snapshot_id, None)
        sid = self.current_snapshot_id if snapshot_id is None else snapshot_id
        return self._catalog.snapshot(self.name, sid)

    def resolve_snapshot(self, snapshot: int | str | None, as_of: Any) -> int:
        """The snapshot id that ``snapshot=`` / ``as_of=`` name: an id, a tag name, a time, or
        (neither) the current snapshot. Every reader (scans, ``files``, statistics, datasets,
        the CLI) resolves here, so a tag works wherever a snapshot id does.

        Args:
            snapshot: a snapshot id (0: the empty table), a tag name, a string of digits (an
                id, as a command line gives it), or None.
            as_of: a time (epoch seconds or ``datetime``): the last snapshot committed at or
                before it.

        Raises:
            ValueError: both ``snapshot`` and ``as_of`` were given.
            SnapshotNotFound: no retained snapshot of that id, no tag of that name (the message
                lists the tags), or none committed at or before ``as_of``.
        """
        if snapshot is not None and as_of is not None:
            raise ValueError("give snapshot= or as_of=, not both")
        if as_of is not None:
            when = as_of.timestamp() if isinstance(as_of, _dt.datetime) else float(as_of)
            return self._catalog.snapshot_as_of(self.name, when).snapshot_id
        if isinstance(snapshot, str):
            # Tag names start with a letter or '_', so a string of digits (from a command
            # line, say) can only mean a snapshot id.
            if not (snapshot.isascii() and snapshot.isdigit()):
                return self._catalog.resolve_tag(self.name, snapshot)
            snapshot = int(snapshot)
        if snapshot is not None:
            if snapshot != 0:
                self._catalog.snapshot(self.name, int(snapshot))  # raises with the list
            return int(snapshot)
        return self.current_snapshot_id

    def schema_at(self, snapshot_id: int) -> Schema:
        """The schema of snapshot ``snapshot_id`` (the current schema for 0, the empty table).

        Raises:
            SnapshotNotFound: the snapshot is not retained.
        """
        if snapshot_id == 0:
            return self.schema
        return self._catalog.snapshot(self.name, snapshot_id).schema

    # -- tags ---------------------------------------------------------------------------
    def tag(self, name: str, snapshot: int | str | None = None, *, replace: bool = False) -> Tag:
        """Name a snapshot (the current one by default) so it can be read again later:
        ``table.scan(snapshot=name)``, ``SampleDataset(table, snapshot=name)``, or ``--snapshot
        NAME`` on the command line. Expiry keeps a tagged snapshot, and GC its files, until
        :meth:`untag` (also rows deleted later: erasure of them waits for the untag).

        Args:
            name: the tag: a letter or '_' first, then letters, digits, '_' and '-'
                (e.g. ``"train-2026-11-20"``).
            snapshot: the snapshot to tag, by id or by another tag's name.
            replace: move an existing tag of that name to this snapshot.

        Raises:
            CatalogError: an invalid name; a tag of that name exists and not ``replace``; or
                the table has no commit yet.
            SnapshotNotFound: the snapshot is not retained.
        """
        if snapshot is not None:
            sid = self.resolve_snapshot(snapshot, None)
            if sid == 0:
                recent = [s.snapshot_id for s in self.snapshots()][-10:]
                raise CatalogError(f"snapshot 0 of table {self.name!r} is the empty table before any commit; there "
                                   f"is nothing to tag. Tag a committed snapshot (the newest: {recent})")
            return self._catalog.create_tag(self.name, name, sid, replace=replace)
        for _attempt in range(10):
            sid = self.current_snapshot_id
            if sid == 0:
                raise CatalogError(f"table {self.name!r} has no commit yet, so there is no snapshot to tag {name!r}; "
                                   f"append data first")
            try:
                return self._catalog.create_tag(self.name, name, sid, replace=replace)
            except SnapshotNotFound:
                # A commit and an expiry came between reading the current snapshot and
                # tagging it: "the current snapshot" is now the new one.
                continue
        raise SnapshotNotFound(f"table {self.name!r}: the current snapshot kept expiring before it could be tagged "
                               f"{name!r}; try again")

    def untag(self, name: str) -> Tag:
        """Remove a tag; its snapshot then expires by the retention policy like any other.
        Returns the removed tag.

        Raises:
            SnapshotNotFound: the table has no such tag (the message lists its tags).
        """
        return self._catalog.drop_tag(self.name, name)

    def tags(self) -> list[Tag]:
        """The table's tags, sorted by name."""
        return self._catalog.tags(self.name)

    # -- retention ------------------------------------------------------------------------
    @property
    def retention(self) -> RetentionPolicy:
        """The table's retention policy: which snapshots expiry keeps when it is not told
        (see :meth:`set_retention`)."""
        return RetentionPolicy.from_properties(self.meta().properties)

    def set_retention(self, retain_last: int | None = 1,
                      older_than: float | _dt.timedelta | None = DEFAULT_RETENTION_SECONDS) -> RetentionPolicy:
        """Set which snapshots expiry keeps for this table: the newest ``retain_last`` and all
        younger than ``older_than`` (seconds or a timedelta); ``None`` switches a rule off.
        The arguments' defaults are the default policy (a week, and at least the last one).

        ``expire_snapshots()``, ``samplestore expire`` and ``samplestore compact`` (once or as a
        daemon) follow it unless given explicit values, which win. The current snapshot,
        tagged snapshots and snapshots a reader leases are always kept.

        Raises:
            ValueError: ``retain_last`` is not an int >= 1 or None, or ``older_than`` is not
                seconds >= 0, a timedelta or None.
        """
        policy = RetentionPolicy(retain_last=retain_last, older_than=older_than)
        self._catalog.set_table_properties(self.name, {RETENTION_PROPERTY: policy.to_dict()})
        return policy

    # -- data quality ---------------------------------------------------------------------
    def set_expectations(self, rules: Sequence[Any]) -> list[Expectation]:
        """Set the table's expectations: the rules every later commit is checked against
        (replacing those set before; ``[]`` removes them). Each rule is a JSON object
        ``{"rule": ..., "column": ..., bounds..., "action": "warn" | "reject" | "quarantine"}``;
        see :mod:`samplestore.table.expectations` and docs/QUALITY.md.

        Raises:
            DataQualityError: a rule is not valid for this table (unknown rule or column, a
                slot out of range, bad bounds): the message names the rule's index and the
                field; nothing is stored.
        """
        meta = self.meta()
        parsed = parse_expectations(rules, meta.schema, meta.partition_by)
        self._catalog.set_table_properties(self.name, {EXPECTATIONS_PROPERTY: [e.to_dict() for e in parsed]})
        return parsed

    @property
    def expectations(self) -> list[Expectation]:
        """The table's expectations (see :meth:`set_expectations`)."""
        meta = self.meta()
        return expectations_of(meta.properties, meta.schema, meta.partition_by)

    def quarantines(self, *, resolved: bool = False) -> list[Quarantine]:
        """Partitions' files held back by ``quarantine`` expectations, open ones (with
        ``resolved``, released and dropped ones too): id, partition, the violations (rule,
        column, measured value, bound), files and rows. Readers do not see them unless they
        ask (``include_quarantined=True``)."""
        return self._catalog.quarantines(self.name, resolved=resolved)

    def release_quarantine(self, quarantine_id: int) -> Snapshot:
        """Make a quarantine's files visible, as a new snapshot (older snapshots still read
        without them).

        Raises:
            CatalogError: no open quarantine of that id (the message lists the open ones).
        """
        return self._catalog.resolve_quarantine(self.name, quarantine_id, "release")

    def drop_quarantine(self, quarantine_id: int) -> Snapshot:
        """Remove a quarantine's files, as a new snapshot: expiry and GC then delete them.

        Raises:
            CatalogError: no open quarantine of that id (the message lists the open ones).
        """
        return self._catalog.resolve_quarantine(self.name, quarantine_id, "drop")

    def last_commit_token(self, writer_id: str = "default") -> str | None:
        """The commit token the streaming writer ``writer_id`` stored last (None if none)."""
        return self._catalog.last_commit_token(self.name, writer_id)

    # -- writing --------------------------------------------------------------------------
    def append(self, data: Any, *, target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
               **writer_options: Any) -> Snapshot | None:
        """Validate and append ``data`` as one atomic commit.

        ``data`` is a ``pyarrow.Table``/``RecordBatch``, a pandas or polars DataFrame, or a
        dict of column name -> array (see :meth:`Schema.conform`); polars is recognised
        without being imported, so it is needed only by callers that use it.

        Returns the new snapshot, or None when ``data`` holds no rows (nothing is committed).

        Raises:
            SchemaError: the data does not match the schema; nothing is committed.
        """
        w = StreamingWriter(self, commit_every_rows=None, commit_every_seconds=None,
                            target_file_bytes=target_file_bytes, operation="append", writer_id=None,
                            **writer_options)
        try:
            w.write(data)
            sid = w.close_once("append")
        except BaseException:
            w.abort()
            raise
        return self.snapshot(sid) if sid is not None else None

    def writer(self, *, commit_every_rows: int | None = 100_000, commit_every_seconds: float | None = None,
               target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES, writer_id: str = "default",
               **options: Any) -> StreamingWriter:
        """A :class:`StreamingWriter` that rolls files and commits on row/time triggers."""
        return StreamingWriter(self, commit_every_rows=commit_every_rows, commit_every_seconds=commit_every_seconds,
                               target_file_bytes=target_file_bytes, writer_id=writer_id, **options)

    def add_features(self, features: Iterable[Feature]) -> Snapshot:
        """Add features (schema evolution) without rewriting files; older files read defaults."""
        meta = self.meta()
        new = meta.schema.add(features)
        return self._catalog.commit(self.name, "schema", schema=new,
                                    summary={"added_features": [f.name for f in new.features[len(meta.schema):]]})

    def delete(self, filter: pc.Expression) -> Snapshot | None:
        """Delete the rows matching ``filter`` (e.g. ``pc.field("user_id").isin([42])``).

        Commits at once: scans and datasets made afterwards no longer see the rows. Their
        bytes leave the disk when compaction rewrites the files that hold them and
        ``expire_snapshots`` + ``gc`` drop the old files. Returns None if nothing matched.
        """
        for _attempt in range(5):
            # Quarantined rows too: an erasure must not come back with a released quarantine.
            with self.scan(columns=[], filter=filter, include_quarantined=True) as scan:
                positions: dict[int, list] = {}
                starts: dict[int, int] = {}
                for task, _rg, n, selected in scan.selections():
                    start = starts.get(task.file_id, 0)
                    starts[task.file_id] = start + n
                    hit = np.arange(start, start + n) if selected is None else selected + start
                    if len(hit):
                        positions.setdefault(task.file_id, []).append(hit)
                if not positions:
                    return None
                dv = {fid: np.concatenate(parts) for fid, parts in positions.items()}
                try:
                    return self._catalog.commit(self.name, "delete", deletes=dv, planned_at=scan.snapshot_id,
                                                summary={"filter": str(filter)})
                except CommitConflict:
                    continue  # a compaction replaced a file meanwhile: find the rows again
        raise CommitConflict(f"delete on table {self.name!r} kept losing races with compaction; try again")

    # -- lifecycle ------------------------------------------------------------------------
    # The work is done by samplestore.compaction, a layer above this one, which registers it
    # in .maintenance when imported (see there): table/ never imports compaction/.
    def compact(self, target_file_bytes: int | None = None, sort_by: Sequence[str] | None = None,
                partitions: Iterable[Any] | None = None, executor: str = "local", *, layout: str | None = None,
                **executor_options: Any) -> Any:
        """Merge the small files of each partition into files near ``target_file_bytes``
        (128 MiB by default), rewriting also every file with deleted rows so that their bytes
        leave the disk (after :meth:`expire_snapshots` and :meth:`gc`).

        Each merged group is one ``replace`` commit; readers and writers carry on meanwhile,
        and a group that loses a race with a delete or another compaction is re-planned.

        Args:
            target_file_bytes: the size to aim at (default 128 MiB).
            sort_by: columns to sort each rewritten file by (e.g. ``["user_id", "ts"]``), so
                that a user's samples lie together.
            partitions: only these partitions (dicts of partition column -> value).
            executor: ``"local"`` (this process) or ``"ray"`` (the groups are rewritten as Ray
                tasks in parallel and committed here; ``pip install 'samplestore[ray]'``; see
                :func:`samplestore.ray.compact`, which takes ``executor_options`` such as
                ``address=``).
            layout: None (rows in commit order, or ``sort_by`` order) or ``"shuffled"``: the
                live rows of each rewritten group in a uniformly random order, for training
                (every file not written so is rewritten, whatever its size; instead of
                ``sort_by``, not with it).

        Returns:
            A :class:`samplestore.compaction.CompactionResult` (files in and out, commits,
            conflicts).

        Raises:
            SchemaError: a ``sort_by`` name is not a column; an unknown ``layout``, or one
                given with ``sort_by``.

        Runs :func:`samplestore.compaction.compact`.
        """
        ops = maintenance("Table.compact()")
        run = compact_executor(executor)
        return run(self, target_file_bytes or ops.default_target_file_bytes, sort_by=sort_by, partitions=partitions,
                   layout=layout, **executor_options)

    def compaction_plan(self, target_file_bytes: int | None = None, partitions: Iterable[Any] | None = None,
                        sort_by: Sequence[str] | None = None, layout: str | None = None) -> Any:
        """What :meth:`compact` would do now, without doing it: a
        :class:`samplestore.compaction.CompactionPlan` (the groups of files it would merge,
        per partition; with ``sort_by`` or ``layout`` also the files not in that order). Runs
        :func:`samplestore.compaction.plan_compaction`."""
        ops = maintenance("Table.compaction_plan()")
        return ops.plan_compaction(self, target_file_bytes or ops.default_target_file_bytes, partitions,
                                   sort_by=sort_by, layout=layout)

    def expire_snapshots(self, older_than: float | _dt.timedelta | None = None,
                         retain_last: int | None = None) -> list[int]:
        """Forget old snapshots; returns the ids expired. Their files stay on disk until
        :meth:`gc`.

        With no arguments the table's :attr:`retention` policy decides; explicit
        ``retain_last`` / ``older_than`` (seconds or a timedelta) win over it for this call
        and replace it as a whole. Tagged, leased and current snapshots are always kept.
        Runs :func:`samplestore.compaction.expire_snapshots`.
        """
        return maintenance("Table.expire_snapshots()").expire_snapshots(self, older_than=older_than,
                                                                         retain_last=retain_last)

    def gc(self, grace_seconds: float = 3600.0) -> dict:
        """Remove files no retained snapshot or live reader needs, and leftovers of dead
        writers older than ``grace_seconds``; returns what was removed. Nothing is removed
        from a folder that is not this catalog's table. Runs
        :func:`samplestore.compaction.gc_table`."""
        return maintenance("Table.gc()").gc(self, grace_seconds)

    # -- reading --------------------------------------------------------------------------
    def scan(self, columns: Sequence[str] | None = None, filter: pc.Expression | None = None,
             snapshot: int | str | None = None, as_of: Any = None, lease_seconds: float | None = None,
             include_quarantined: bool = False) -> Scan:
        """A :class:`Scan` pinned to a snapshot (see there): ``snapshot`` is an id or a tag
        name (see :meth:`tag`), the current snapshot if None. Files held back by a quarantine
        (see :meth:`quarantines`) are read only with ``include_quarantined``."""
        return Scan(self, columns, filter, snapshot, as_of, lease_seconds=lease_seconds or DEFAULT_LEASE_SECONDS,
                    include_quarantined=include_quarantined)

    def to_arrow(self, **scan_args: Any) -> pa.Table:
        """Shorthand for ``scan(**scan_args).to_arrow()``."""
        return self.scan(**scan_args).to_arrow()

    def count(self, **scan_args: Any) -> int:
        """Shorthand for ``scan(**scan_args).count()``."""
        return self.scan(**scan_args).count()

    def files(self, snapshot: int | str | None = None, with_stats: Iterable[str] | None = None, *,
              include_quarantined: bool = False) -> list:
        """The live data files of a snapshot, by id or tag name (with per-column statistics if
        asked); those of open quarantines only with ``include_quarantined``."""
        sid = self.resolve_snapshot(snapshot, None)
        return self._catalog.files(self.name, sid, with_stats=with_stats, include_quarantined=include_quarantined)

    def check_columns(self, columns: Iterable[str]) -> None:
        """Check that every name in ``columns`` is a column of the current schema.

        Raises:
            SchemaError: a name is not a column (the message lists the columns).
        """
        schema = self.schema
        for c in columns:
            if c not in schema:
                raise SchemaError(f"table {self.name!r} has no column {c!r}; columns: {schema.names}")

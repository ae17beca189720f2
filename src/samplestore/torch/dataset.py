"""``SampleDataset``: a PyTorch IterableDataset streaming shuffled batches of a table snapshot."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pyarrow.compute as pc
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..catalog import Catalog, DataFile
from ..errors import LeaseExpired, SampleStoreError, SchemaError, StateMismatch
from ..table import FileTask, Table, open_store
from ..table.lease import Lease, lease_is_live
from ..table.scan import deleted_among
from . import _gather
from .batch import Batch, DedupIds, SparseFeatures
from .impute import plan_imputation
from .ring import SlotRing
from .sharding import epoch_rng, plan_worker, rank_batch_sizes, split_windows
from .window import FeatureLayout, ReaderCache, Window, concat_parts, gather, load_window

__all__ = ["SampleDataset", "DEFAULT_SHUFFLE_BUFFER_ROWS", "StateMismatch"]

#: Rows a worker holds decoded: the window being served plus the one decoded ahead.
DEFAULT_SHUFFLE_BUFFER_ROWS = 131_072
_STOP = object()


@dataclass(frozen=True)
class _Units:
    """The units (row groups) a dataset reads, as plain arrays: DataLoader workers copy this,
    and arrays do not grow on read the way lists of objects do.

    ``live`` maps a unit whose rows are not all delivered (deleted, or not matching the row
    filter) to the sorted positions of the rows that are.
    """

    paths: list[str]
    file_ids: list[int]
    unit_file: np.ndarray
    unit_rg: np.ndarray
    unit_start: np.ndarray  # first row of the unit's row group in its file
    unit_rows: np.ndarray
    live: dict[int, np.ndarray]

    @classmethod
    def of(cls, scan: Any, tasks: Sequence[Any] | None = None) -> "_Units":
        """The units of a scan's plan (or of ``tasks``): its row groups, with the rows that
        survive deletes and the row filter counted now, so sharding stays exact."""
        paths: list[str] = []
        index: dict[int, int] = {}
        unit_file, unit_rg, unit_start, unit_rows = [], [], [], []
        live: dict[int, np.ndarray] = {}
        next_start: dict[int, int] = {}
        for task, rg, n, selected in scan.selections(tasks):
            i = index.get(task.file_id)
            if i is None:
                i = index[task.file_id] = len(paths)
                paths.append(task.path)
            start = next_start.get(i, 0)
            next_start[i] = start + n
            if selected is not None:
                if not len(selected):
                    continue  # nothing of this row group is delivered: no unit
                # int32 positions: a row group holds far fewer than 2**31 rows.
                live[len(unit_rows)] = selected.astype(np.int32)
                n = len(selected)
            unit_file.append(i)
            unit_rg.append(rg)
            unit_start.append(start)
            unit_rows.append(n)
        return cls(paths, list(index), np.asarray(unit_file, dtype=np.int32), np.asarray(unit_rg, dtype=np.int32),
                   np.asarray(unit_start, dtype=np.int64), np.asarray(unit_rows, dtype=np.int64), live)

    def deleted_in(self, pieces: np.ndarray, deleted: dict[int, np.ndarray]) -> np.ndarray | None:
        """Which rows of a window of ``pieces`` (unit, first, end) are among ``deleted`` (row
        positions per file id); None when none is."""
        parts, any_hit = [], False
        for unit, lo, hi in pieces.tolist():
            dv = deleted.get(self.file_ids[self.unit_file[unit]])
            sel = self.live.get(unit)
            rows = sel[lo:hi] if sel is not None else np.arange(lo, hi)
            hit = deleted_among(dv, rows.astype(np.int64) + self.unit_start[unit]) if dv is not None \
                else np.zeros(hi - lo, bool)
            any_hit |= bool(hit.any())
            parts.append(hit)
        return np.concatenate(parts) if any_hit else None


class _SharedPosition:
    """Epoch and resume point, shared with DataLoader workers (persistent ones included).

    The main process writes them (``set_epoch``, ``load_state_dict``); every worker takes
    them at the start of each ``__iter__``, as a freshly started worker would.
    """

    _NONE = -1

    def __init__(self) -> None:
        # epoch, next batch, follow round (after, offset), DataLoader workers of the last iteration
        self._a = multiprocessing.RawArray("q", 5)
        self._a[2] = self._NONE

    def publish(self, epoch: int, next_batch: int, follow_at: tuple[int, int] | None) -> None:
        a = self._a
        a[0], a[1] = int(epoch), int(next_batch)
        a[2], a[3] = (int(follow_at[0]), int(follow_at[1])) if follow_at is not None else (self._NONE, 0)

    def read(self) -> tuple[int, int, tuple[int, int] | None]:
        a = self._a
        return int(a[0]), int(a[1]), ((int(a[2]), int(a[3])) if a[2] != self._NONE else None)

    @property
    def workers(self) -> int:
        """DataLoader workers of the latest iteration (1: the main process; 0: none yet)."""
        return int(self._a[4])

    @workers.setter
    def workers(self, n: int) -> None:
        self._a[4] = int(n)


def _make_shared_position() -> "_SharedPosition | None":
    try:
        return _SharedPosition()
    except (OSError, ValueError):  # no shared memory here: workers keep their own copies
        return None


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class SampleDataset(IterableDataset):
    """Shuffled batches of a table snapshot, for ``DataLoader(ds, batch_size=None, ...)``.

    The snapshot is pinned when the dataset is made, by a lease taken before its files are
    planned and held while the dataset lives; its row groups are split across
    ``torch.distributed`` ranks and DataLoader workers so that every row is delivered
    exactly once per epoch and every rank yields the same number of batches (see
    :mod:`samplestore.torch.sharding` for the remainder rule). Each worker decodes one
    shuffle window ahead in a background thread.

    Args:
        table: a :class:`samplestore.Table`.
        features: feature names to deliver (all if None). Dense features go to
            ``batch.dense``, sparse and sequence features to ``batch.sparse``, labels to
            ``batch.labels``, embeddings to ``batch.embeddings``, scalars to ``batch.extras``.
        batch_size: rows per batch.
        shuffle: shuffle rows (stratified row-group order + fully permuted windows).
        seed: shuffle seed; the order depends on (seed, epoch, world size, workers).
        shuffle_buffer_rows: decoded rows held per worker (two windows of half this size).
        drop_last: drop the epoch's last partial batches (see the sharding rules).
        snapshot: snapshot id to read (the current one if None). Under torch.distributed,
            give every rank the same one: each rank pins its own otherwise, and ranks made
            on either side of an append or a compaction would shard different snapshots.
        filter: a ``pyarrow.compute`` expression: only rows it selects are delivered, exactly
            as ``table.scan(filter=...)`` returns them. Files and row groups are pruned by
            partition values and statistics; the rows of the rest are counted when the
            dataset is made (reading only the filter's columns), so sharding stays exact.
        rank, world_size: override the ``torch.distributed`` process group.
        lease_seconds: the snapshot is pinned by a lease in the catalog, renewed by this
            process while the dataset lives; garbage collection keeps its files until the
            lease lapses (``lease_seconds`` after the process stops renewing it). A lapsed
            lease stops iteration with :class:`~samplestore.errors.LeaseExpired`.
        follow: after the snapshot's rows, keep delivering rows appended later, each once,
            in *rounds*: a round takes the appends committed after the previous round, up to
            the first snapshot at which they hold ``follow_round_rows`` rows (default: one
            batch per rank), and is sharded like an epoch, so every rank yields the same
            number of batches. Rows are delivered as they stand at the round's last snapshot
            (rows deleted by then, or before they are read, are not). Each iterating process
            holds a follower lease, and compaction leaves appends a follower has not read
            alone (they are merged once every follower is past them). Polls every
            ``poll_seconds``; after ``follow_idle_seconds`` without a new round (None: never)
            the stream ends: a sole reader (one rank, at most one worker) first delivers the
            appends still pending as a last round; several readers stop at the last full
            round, since they could cut a partial one differently.
        dedup: names of sparse or sequence features to deliver deduplicated per batch: in
            ``batch.dedup[name]`` as the distinct ids and, per position, an index into them
            (:class:`~samplestore.torch.batch.DedupIds`), instead of in ``batch.sparse``, so a
            trainer looks each embedding row up once per batch. ``batch.full_sparse()`` and
            ``batch.to_kjt()`` still give every feature, equal to a batch without ``dedup``.
        impute: dense feature name -> how its missing (NaN) values are filled, per
            dimension: ``"mean"`` (the mean of the dimension's non-missing values in the
            pinned snapshot, from the catalog's statistics, as ``table_stats`` reports it in
            ``mean_by_dim``: over the stored rows, deleted rows not yet purged included),
            ``"zero"``, a number, or ``dim`` numbers. The fills are fixed when the dataset is
            made (later appends do not move them). Each batch is filled by one kernel pass
            per imputed feature, no per-row Python (see :mod:`samplestore.torch.impute`).
        missing_indicators: with ``impute``, add one 0/1 float32 column per dimension of each
            imputed feature, 1 where the value was missing: at the end of ``batch.dense``,
            named ``"<name>_missing"`` in ``batch.dense_names`` (``batch.dense_feature(
            "dense_missing")``). The features' own columns keep their positions; the jagged
            features and ``batch.to_kjt()`` are unchanged.
        include_quarantined: also deliver the rows of open quarantines (files a commit held
            back for breaking an expectation, see ``Table.quarantines``); by default a
            dataset sees only released data. A follower sees a released quarantine's rows in
            the round of the snapshot that released it.

    Raises:
        SchemaError: ``impute`` names a feature that is not a dense feature this dataset
            delivers, or a strategy that is none of the above (the message names it).
        CatalogError: ``"mean"`` over a snapshot with files written before samplestore
            recorded per-dimension sums (the message names the file and what rewrites it).
    """

    def __init__(self, table: Table, features: Sequence[str] | None = None, batch_size: int = 4096, shuffle: bool = True,
                 seed: int = 0, shuffle_buffer_rows: int = DEFAULT_SHUFFLE_BUFFER_ROWS, drop_last: bool = False,
                 snapshot: int | None = None, filter: pc.Expression | None = None, rank: int | None = None,
                 world_size: int | None = None, follow: bool = False, poll_seconds: float = 1.0,
                 follow_idle_seconds: float | None = None, lease_seconds: float = 300.0,
                 follow_round_rows: int | None = None, dedup: Sequence[str] = (),
                 impute: Mapping[str, Any] | None = None, missing_indicators: bool = False,
                 include_quarantined: bool = False) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, found {batch_size}")
        self.table_name = table.name
        self.store_root = table.store.root
        self.catalog_location = table.store.catalog_location  # a remote root has its catalog elsewhere
        self.storage = table.storage  # workers reopen the store: with the same storage
        # The scan leases its snapshot before it plans the files, and hands the lease over.
        scan = table.scan(columns=features, filter=filter, snapshot=snapshot, lease_seconds=lease_seconds,
                          include_quarantined=include_quarantined)
        plan = scan.plan()
        self.snapshot_id = plan.snapshot_id
        self.schema = scan.out_schema
        self.layout = FeatureLayout.of(list(self.schema))
        if not self.layout.labels and not self.layout.dense and not self.layout.sparse:
            raise SampleStoreError("a SampleDataset needs at least one dense, sparse, sequence or label feature")
        self.dedup = list(dict.fromkeys(dedup))
        jagged = [f.name for f in self.layout.sparse]
        unknown = [n for n in self.dedup if n not in jagged]
        if unknown:
            raise SchemaError(f"dedup names {unknown}, which are not sparse or sequence features this dataset "
                              f"delivers; those are {jagged}")
        # Deduplicated keys go last in the gathered layout, so the others stay one contiguous
        # KeyedJaggedTensor block and the deduplicated ids are deduplicated in place behind it.
        self._dedup_position = {n: jagged.index(n) for n in self.dedup}
        if self.dedup:
            last = [f for f in self.schema if f.name in self._dedup_position]
            self.layout = FeatureLayout.of([f for f in self.schema if f.name not in self._dedup_position] + last)
        try:  # fills from the pinned snapshot's statistics, while the scan's lease pins it
            self._impute = plan_imputation(table, self.snapshot_id, self.layout.dense, impute, missing_indicators)
        except BaseException:
            scan.close()
            raise
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.window_rows = max(self.batch_size, int(shuffle_buffer_rows) // 2)
        self.drop_last = drop_last
        self._rank, self._world = rank, world_size
        self.follow = follow
        self.poll_seconds = poll_seconds
        self.follow_idle_seconds = follow_idle_seconds
        self.follow_round_rows = follow_round_rows
        self.lease_seconds = lease_seconds
        self._filter = filter
        self._units = _Units.of(scan)
        self._lease = scan.take_lease()
        self._follow_lease = None
        if follow:
            # Appends after the snapshot must stay as committed until a follower reads them.
            # Each iterating process (a DataLoader worker, or this one) holds its own lease and
            # moves it forward; this one bridges the time until they start, then lapses.
            self._follow_lease = Lease(table.catalog, table.name, self.snapshot_id, ttl=lease_seconds,
                                       keep_later=True, renew=False)
        # Made here, before a DataLoader forks workers, so they and this process share them.
        self._ring = _make_ring()
        self._shared = _make_shared_position()
        self._local_state = False  # a worker's own state was loaded (torchdata): not the shared one
        self._workers_seen = 0  # DataLoader workers of the latest iteration, where no shared array says
        self._expect_workers: int | None = None  # from a loaded state: the workers its position assumes
        self.catalog_id = table.store.catalog.catalog_id
        self.epoch = 0
        self._next_batch = 0  # rank-level index of the next batch to deliver (resume point)
        self._role: int | None = None  # planned worker this process plays (from a per-worker state)
        self._follow_at: tuple[int, int] | None = None  # follow round of the resume point

    # -- public ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release the snapshot lease now (it also lapses by itself once not renewed)."""
        for lease in (self._lease, self._follow_lease):
            if lease is not None:
                lease.release()

    def __getstate__(self) -> dict[str, Any]:
        # Copies in spawned workers do not own the lease; only the creating process renews it.
        state = dict(self.__dict__)
        for k in ("_lease", "_follow_lease"):
            if state.get(k) is not None:
                state[k] = state[k].detached()
        for k in ("_reader_cache", "_catalog_here"):
            state.pop(k, None)
        state["_ring"] = None  # an anonymous mapping reaches forked workers only
        if multiprocessing.context.get_spawning_popen() is None:
            state["_shared"] = None  # shared memory travels only to a process being started
        return state

    @property
    def num_rows(self) -> int:
        """Rows the dataset delivers per epoch: the pinned snapshot's, after the filter."""
        return int(self._units.unit_rows.sum())

    def set_epoch(self, epoch: int) -> None:
        """Use the order of epoch ``epoch`` (call before each epoch, as with DistributedSampler).

        Reaches DataLoader workers too, persistent ones included, at their next epoch.
        """
        self._follow_at = None
        self._expect_workers = None  # a new epoch may use any number of workers
        self._set_position(int(epoch), 0, None)

    def _set_position(self, epoch: int, next_batch: int, role: int | None) -> None:
        self.epoch = epoch
        self._next_batch = next_batch
        self._role = role
        if get_worker_info() is not None:
            self._local_state = True
        elif self._shared is not None:
            self._shared.publish(epoch, next_batch, self._follow_at)

    def rank_world(self) -> tuple[int, int]:
        """(rank, world size) used for sharding."""
        r, w = _dist_rank_world()
        return (self._rank if self._rank is not None else r, self._world if self._world is not None else w)

    def __len__(self) -> int:
        """Batches this rank yields per epoch (the same on every rank)."""
        rank, world = self.rank_world()
        return len(rank_batch_sizes(self.num_rows, self.batch_size, world, rank, self.drop_last)[2])

    def _identity(self) -> dict[str, Any]:
        """What a saved position is only valid for."""
        return {"table": self.table_name, "catalog_id": self.catalog_id, "snapshot_id": self.snapshot_id, "seed": self.seed,
                "batch_size": self.batch_size, "world_size": self.rank_world()[1], "shuffle": bool(self.shuffle),
                "drop_last": bool(self.drop_last), "window_rows": self._window_rows_aligned(), "num_rows": self.num_rows}

    def state_dict(self) -> dict[str, Any]:
        """Position to resume from (epoch and the next batch index of this rank's epoch), with
        what it is valid for (table, snapshot, seed, batch size, world size, ...).

        In a DataLoader worker (e.g. under torchdata's ``StatefulDataLoader``) the state is
        that worker's; in the main process with ``num_workers=0`` it is the iterator's. With a
        plain multi-worker DataLoader use :meth:`state_at` on the last batch consumed.
        """
        state = {"epoch": self.epoch, "next_batch": self._next_batch, **self._identity()}
        info = get_worker_info()
        state["num_workers"] = info.num_workers if info is not None else self._iteration_workers()
        if info is not None and self._role is not None:
            state["worker"] = self._role
        if self._follow_at is not None:
            state["follow_round"] = list(self._follow_at)
        return state

    def state_at(self, batch: Batch) -> dict[str, Any]:
        """The state right after ``batch`` was consumed (works with any DataLoader)."""
        state = {"epoch": batch.epoch, "next_batch": batch.index + 1, **self._identity(),
                 "num_workers": self._iteration_workers()}
        if batch.follow_round is not None:
            state["follow_round"] = list(batch.follow_round)
        return state

    def _iteration_workers(self) -> int:
        """DataLoader workers of the latest iteration (1 for the main process itself)."""
        shared = getattr(self, "_shared", None)
        n = shared.workers if shared is not None and shared.workers else self._workers_seen
        return max(1, n)

    _REQUIRED = ("epoch", "next_batch", "table", "snapshot_id", "seed", "batch_size")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at a :meth:`state_dict` / :meth:`state_at` position.

        Raises:
            StateMismatch: the state was saved by a dataset over another table, snapshot,
                seed, batch size, world size or shuffle layout; resuming would deliver other
                rows than the ones that remain. Nothing is changed.
        """
        missing = [k for k in self._REQUIRED if k not in state]
        if missing:
            raise StateMismatch(f"cannot resume from this state: it lacks {missing}, so it cannot be checked against "
                                f"this dataset; save states with state_dict() or state_at()")
        mine = self._identity()
        wrong = [f"{k}: saved {state[k]!r}, this dataset {v!r}" for k, v in mine.items() if k in state and state[k] != v]
        if wrong:
            hint = (f"; build the dataset with snapshot={state['snapshot_id']}"
                    if "snapshot_id" in state and state["snapshot_id"] != self.snapshot_id else "")
            raise StateMismatch("cannot resume from this state, it belongs to another dataset: " + "; ".join(wrong) + hint)
        follow_at = state.get("follow_round")
        self._follow_at = (int(follow_at[0]), int(follow_at[1])) if follow_at is not None else None
        # 0 and 1 workers plan alike (one process reads everything).
        self._expect_workers = max(1, int(state["num_workers"])) if "num_workers" in state else None
        self._set_position(int(state["epoch"]), int(state["next_batch"]),
                           int(state["worker"]) if "worker" in state else None)

    # -- iteration ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        self._in_worker = info is not None
        shared = getattr(self, "_shared", None)
        if info is not None and shared is not None:
            if self._local_state:  # this worker's own state was loaded for this iteration
                self._local_state = False
            else:  # where the main process says, as a newly started worker would begin
                self.epoch, self._next_batch, self._follow_at = shared.read()
                self._role = None
        if self._expect_workers is not None and self._expect_workers != num_workers:
            raise StateMismatch(
                f"the loaded state was saved with {self._expect_workers} DataLoader worker(s) (0 or 1 alike: one "
                f"process), this loader has {num_workers}: each worker reads its own rows, so the rest of the epoch "
                f"would differ; resume with the same num_workers")
        self._workers_seen = num_workers
        if shared is not None and worker == 0:
            shared.workers = num_workers
        ring = getattr(self, "_ring", None)
        self._claim = (lambda nbytes: ring.claim(worker, nbytes)) if ring is not None and info is not None else None
        rank, world = self.rank_world()
        start = self._next_batch
        # Batch i of the epoch plan is made by planned worker i % W. Resuming at batch k, the
        # DataLoader's round robin starts again at process 0, so process p plays planned worker
        # (p + k) % W: the epoch's layout is unchanged and batches still arrive in order. A
        # per-worker state (torchdata) names its planned worker itself.
        role = self._role if self._role is not None else (worker + start) % num_workers
        self._role = role
        epoch_batches = len(self)
        follow_lease = None
        if self.follow:
            at = self._follow_at if self._follow_at is not None and start >= epoch_batches \
                else (self.snapshot_id, epoch_batches)
            follow_lease = self._take_follow_lease(at[0])
        try:
            if start < epoch_batches or not self.follow:
                plan = plan_worker(self._units.unit_rows, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle,
                                   window_rows=self._window_rows_aligned(), batch_size=self.batch_size, rank=rank,
                                   world=world, worker=role, num_workers=num_workers, drop_last=self.drop_last)
                skip = int(np.searchsorted(plan.batch_index, start))  # own batches already delivered
                for batch in self._epoch_batches(plan, skip, rank, role, self._units, self.epoch):
                    self._next_batch = batch.index + 1
                    yield batch
            if self.follow:
                yield from self._follow(rank, world, role, num_workers, at, max(start, epoch_batches), follow_lease)
        finally:
            if follow_lease is not None:
                follow_lease.release()
        self._next_batch = 0
        self._role = None
        self._follow_at = None

    def _window_rows_aligned(self) -> int:
        # Windows hold whole batches where possible, so few batches span two windows.
        b = self.batch_size
        return max(b, (self.window_rows // b) * b)

    def _epoch_batches(self, plan: Any, skip: int, rank: int, worker: int, units: _Units, seed_key: int,
                       index_offset: int = 0, follow_round: tuple[int, int] | None = None,
                       lease: Any = None, late_deletes: Any = None) -> Iterator[Batch]:
        sizes, index = plan.batch_sizes, plan.batch_index
        if skip >= len(sizes):
            return
        wrows = plan.window_rows
        windows = split_windows(plan.pieces, wrows)
        rows_before = int(sizes[:skip].sum())
        first_window, offset = divmod(rows_before, wrows)
        keys = (self.epoch, rank, worker) if follow_round is None else (self.epoch, rank, worker, *follow_round)
        perm_of = lambda j, n: (epoch_rng(self.seed, *keys, j).permutation(n)  # noqa: E731
                                if self.shuffle else np.arange(n))

        def load(j: int) -> Window:
            self._check_lease(lease)
            try:
                win = load_window(windows[j], units.paths, units.unit_file, units.unit_rg, self.layout,
                                  self._readers(), units.live)
            except FileNotFoundError:
                self._check_lease(lease)  # GC removed it because the lease lapsed: say that
                raise
            if late_deletes is not None:
                win.dropped = units.deleted_in(windows[j], late_deletes())
            return win

        source = _Prefetch(load, range(first_window, len(windows)))
        try:
            j = first_window
            win = source.next()
            perm = perm_of(j, win.num_rows)
            pos = offset
            for b in range(skip, len(sizes)):
                need = int(sizes[b])
                parts = []
                while need > 0:
                    if pos >= win.num_rows:
                        j += 1
                        # Dropped before the next is taken, which lets the thread decode the
                        # one after: never three windows alive.
                        del win, perm
                        win = source.next()
                        perm = perm_of(j, win.num_rows)
                        pos = 0
                    take = min(need, win.num_rows - pos)
                    rows = perm[pos: pos + take]
                    if win.dropped is not None:  # deleted since the plan: the batch is smaller
                        rows = rows[~win.dropped[rows]]
                    parts.append(gather(win, rows, self.layout, shared=self._in_worker, claim=self._claim,
                                        dedup_keys=len(self.dedup), impute=self._impute))
                    pos += take
                    need -= take
                if not parts:
                    parts.append(gather(win, np.empty(0, np.int64), self.layout, shared=self._in_worker,
                                        impute=self._impute))
                yield self._to_batch(concat_parts(parts, len(self.layout.sparse)), index_offset + int(index[b]),
                                     follow_round)
        finally:
            source.close()

    def _check_lease(self, lease: Any = None) -> None:
        """Raise LeaseExpired if the lease pinning what this process reads lapsed. The owner
        knows from its heartbeat; a DataLoader worker asks the catalog."""
        lease = lease if lease is not None else self._lease
        if lease is None:
            return
        if lease.owner_pid == os.getpid():
            lease.check()
            return
        if not lease_is_live(self._catalog(), self.table_name, lease.lease_id):
            raise LeaseExpired(f"the lease pinning snapshot {lease.snapshot_id} of table {self.table_name!r} lapsed "
                               f"(the process that made the dataset stopped renewing it for {lease.ttl:g} s), so "
                               "garbage collection may have removed its files; make the dataset again")

    def _reopen_store(self) -> Any:
        """The dataset's store, opened again in this process (a worker): same storage, same catalog."""
        return open_store(self.store_root, create=False, storage=self.storage, catalog=self.catalog_location)

    def _catalog(self) -> Catalog:
        cat = getattr(self, "_catalog_here", None)
        if cat is None or getattr(self, "_catalog_pid", None) != os.getpid():
            cat = self._reopen_store().catalog
            self._catalog_here, self._catalog_pid = cat, os.getpid()
        return cat

    def _readers(self) -> ReaderCache:
        cache = getattr(self, "_reader_cache", None)
        if cache is None or getattr(self, "_reader_pid", None) != os.getpid():
            cache = ReaderCache(storage=self.storage)
            self._reader_cache, self._reader_pid = cache, os.getpid()
        return cache

    def _to_batch(self, a: dict[str, Any], index: int, follow_round: tuple[int, int] | None = None) -> Batch:
        """Wrap gathered arrays as tensors. Arrays carved from a shared arena become views of
        its one storage, so the batch crosses processes as one shared-memory segment."""
        arena = a.get("arena")
        if arena is not None and arena.tensor is not None:
            base = arena.tensor
            start = base.numpy().ctypes.data

            def tensor(arr: np.ndarray) -> torch.Tensor:
                if not arr.size:
                    return torch.from_numpy(np.ascontiguousarray(arr))
                off = arr.ctypes.data - start
                return base[off: off + arr.nbytes].view(torch.from_numpy(arr[:0]).dtype).view(arr.shape)
        else:
            def tensor(arr: np.ndarray) -> torch.Tensor:
                return torch.from_numpy(np.ascontiguousarray(arr))

        names, col = {}, 0
        for f in self.layout.dense:
            names[f.name] = (col, col + f.dim)
            col += f.dim
        if self._impute is not None:
            names.update(self._impute.dense_names())
        sparse, dedup = self._split_dedup(a, tensor)
        batch = Batch(
            dense=tensor(a["dense"]),
            sparse=sparse,
            dedup=dedup,
            labels=tensor(a["labels"]),
            embeddings={k: tensor(v) for k, v in a["embeddings"].items()},
            extras={k: (v.tolist() if v.dtype == object else tensor(v)) for k, v in a["extras"].items()},
            dense_names=names,
            epoch=self.epoch,
            index=index,
            follow_round=follow_round,
        )
        if arena is not None and arena.slot is not None:
            batch._shared_slot = arena.slot  # pickled as offsets into the ring (see ring.py)
        return batch

    def _split_dedup(self, a: dict[str, Any], tensor: Any) -> tuple[SparseFeatures, dict[str, DedupIds]]:
        """The gathered jagged arrays as ``batch.sparse`` and, for the ``dedup`` features (the
        last keys of the layout), :class:`DedupIds` made in place: each key's ids become its
        distinct ids, and the reserved ``inverse`` buffer the index of every position."""
        keys = [f.name for f in self.layout.sparse]
        values, lengths, weights = a["values"], a["lengths"], a["weights"]
        nd = len(self.dedup)
        if not nd:
            return SparseFeatures(keys, tensor(values), tensor(lengths),
                                  tensor(weights) if weights is not None else None), {}
        nk, b = len(keys), len(a["labels"])
        per_key = lengths.reshape(nk, b).sum(1, dtype=np.int64) if b else np.zeros(nk, np.int64)
        split = int(per_key[:nk - nd].sum())
        inverse = a.get("inverse")
        if inverse is None or len(inverse) != len(values) - split:  # a joined batch: no reserved buffer
            inverse = np.empty(len(values) - split, np.int32)
        dedup, pos = {}, split
        for j in range(nk - nd, nk):
            t = int(per_key[j])
            ids, inv = values[pos: pos + t], inverse[pos - split: pos - split + t]
            k = _gather.unique_inverse(ids, inv)
            dedup[keys[j]] = DedupIds(tensor(ids[:k]), tensor(inv), tensor(lengths[j * b:(j + 1) * b]),
                                      tensor(weights[pos: pos + t]) if weights is not None else None,
                                      self._dedup_position[keys[j]])
            pos += t
        sparse = SparseFeatures(keys[:nk - nd], tensor(values[:split]), tensor(lengths[:(nk - nd) * b]),
                                tensor(weights[:split]) if weights is not None else None)
        return sparse, dedup

    # -- online training ------------------------------------------------------------------
    def _take_follow_lease(self, after: int) -> Lease:
        """This process's follower lease on the appends after ``after``, after checking that
        they are still all there, as committed: compaction leaves appends alone while a
        follower's lease covers them, but not while no lease did (the dataset was iterated
        long after it was made, or a stream resumed after a long stop)."""
        catalog = self._catalog()
        lease = Lease(catalog, self.table_name, after, ttl=self.lease_seconds, keep_later=True)
        replaced = catalog.appends_replaced_upto(self.table_name)
        if replaced > after:
            lease.release()
            raise LeaseExpired(
                f"table {self.table_name!r}: appends up to snapshot {replaced} were compacted while no follower held "
                f"them (this stream is at snapshot {after}), so their rows can no longer be delivered exactly once; "
                f"iterate within lease_seconds ({self.lease_seconds:g} s) of making the dataset, or follow again "
                f"from the current snapshot")
        if self._follow_lease is not None and self._follow_lease.owned:
            self._follow_lease.release()  # ours covers what it bridged
        return lease

    def _follow(self, rank: int, world: int, role: int, num_workers: int, at: tuple[int, int],
                start: int, lease: Any) -> Iterator[Batch]:
        """Rows appended after the pinned snapshot, each once, in rounds sharded like epochs.

        A round is a function of the catalog alone (the appends after snapshot ``after`` up
        to the first snapshot where they reach the round's rows), so every rank and worker
        computes the same rounds whenever it looks, and the batch numbering continues the
        DataLoader's round robin across rounds.
        """
        table = self._reopen_store().table(self.table_name)
        catalog = table.catalog
        after, offset = at
        round_rows = self.follow_round_rows or self.batch_size * world
        # A partial last round is safe only for a sole reader: readers that look at different
        # moments would cut it differently. Several stop at the last full round instead.
        sole = world * num_workers == 1
        idle_since = time.monotonic()
        try:
            while True:
                self._check_lease(lease)
                idle = (self.follow_idle_seconds is not None
                        and time.monotonic() - idle_since > self.follow_idle_seconds)
                upto, files = _next_round(catalog, self.table_name, after, round_rows, final=idle and sole)
                if upto is None:
                    if idle:
                        return
                    time.sleep(self.poll_seconds)
                    continue
                # The round's files are protected by the follow lease; the scan (of the current
                # snapshot, whose schema is the newest) only evaluates the filter on them.
                with table.scan(columns=self.schema.names, filter=self._filter,
                                lease_seconds=self.lease_seconds) as scan:
                    units = _Units.of(scan, _round_tasks(table, files, upto))
                plan = plan_worker(units.unit_rows, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle,
                                   window_rows=self._window_rows_aligned(), batch_size=self.batch_size, rank=rank,
                                   world=world, worker=(role - offset) % num_workers, num_workers=num_workers,
                                   drop_last=False)
                skip = int(np.searchsorted(plan.batch_index + offset, start))
                k = len(rank_batch_sizes(int(units.unit_rows.sum()), self.batch_size, world, rank, False)[2])
                def late_deletes(files: list[Any] = files) -> dict[int, np.ndarray]:
                    # Rows deleted since the round was planned are not delivered either: the
                    # batches they were planned into come out smaller, their number unchanged.
                    return catalog.deleted_positions(self.table_name, table.current_snapshot_id,
                                                     [f.file_id for f in files])

                if len(plan.batch_sizes) and skip < len(plan.batch_sizes):
                    for batch in self._epoch_batches(plan, skip, rank, (role - offset) % num_workers, units,
                                                     self.epoch, offset, (after, offset), lease, late_deletes):
                        self._next_batch, self._follow_at = batch.index + 1, (after, offset)
                        yield batch
                after, offset = upto, offset + k
                self._follow_at = (after, offset)
                moved = Lease(catalog, self.table_name, after, ttl=self.lease_seconds, keep_later=True)
                lease.release()
                lease = moved
                idle_since = time.monotonic()
        finally:
            lease.release()


def _next_round(catalog: Catalog, table: str, after: int, round_rows: int, final: bool) -> tuple[int | None, list[Any]]:
    """The next follow round after snapshot ``after``: (its last snapshot, its appended files),
    or (None, []) when the appends committed so far do not complete one (with ``final``, any
    appends at all make one). Counted in rows as written, which never change, so every
    reader finds the same rounds."""
    files = catalog.appended_files(table, after)
    if not files:
        return None, []
    # A released quarantine's files join the stream at the snapshot that released them.
    files.sort(key=lambda f: (f.visible_from, f.file_id))
    rows = 0
    for i, f in enumerate(files):
        rows += f.num_rows
        last = i + 1 == len(files) or files[i + 1].visible_from != f.visible_from
        if last and rows >= round_rows:
            upto = f.visible_from
            return upto, [g for g in files if g.visible_from <= upto]
    if final:
        return files[-1].visible_from, files
    return None, []


def _round_tasks(table: Table, files: list[DataFile], upto: int) -> list[FileTask]:
    """Read tasks for a round's files, with the rows deleted as of its last snapshot."""
    dvs = table.catalog.deleted_positions(table.name, upto, [f.file_id for f in files])
    return [FileTask.of(table.dir, f, dvs.get(f.file_id)) for f in files]


def _make_ring() -> SlotRing | None:
    try:
        return SlotRing()
    except (OSError, ValueError):  # no shared anonymous memory here: per-batch segments it is
        return None


class _Prefetch:
    """Load windows in a background thread, one ahead (zstd and the kernels release the GIL).

    The thread starts decoding window j+1 only once the consumer has taken window j, so at
    most two windows are alive: the one batches are cut from and the one being decoded
    (the shuffle buffer of ``shuffle_buffer_rows``).
    """

    def __init__(self, load: Any, indices: range) -> None:
        self._q: queue.Queue = queue.Queue()
        self._slot = threading.Semaphore(1)  # windows the thread may decode before one is taken
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(load, indices), daemon=True)
        self._thread.start()

    def _run(self, load: Any, indices: range) -> None:
        try:
            for j in indices:
                while not self._slot.acquire(timeout=0.1):
                    if self._stop.is_set():
                        return
                if self._stop.is_set():
                    return
                self._q.put(load(j))
        except BaseException as exc:  # hand the error to the consumer
            self._q.put(exc)
            return
        self._q.put(_STOP)

    def next(self) -> Window:
        item = self._q.get()
        self._slot.release()
        if isinstance(item, BaseException):
            raise item
        if item is _STOP:
            raise SampleStoreError("internal error: the epoch plan asked for more windows than it has")
        return item

    def close(self) -> None:
        self._stop.set()
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5)

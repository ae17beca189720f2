"""``SampleDataset``: a PyTorch IterableDataset streaming shuffled batches of a table snapshot."""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow.compute as pc
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..errors import SampleStoreError
from .batch import Batch, SparseFeatures
from .ring import SlotRing
from .sharding import epoch_rng, plan_worker, split_windows
from .window import FeatureLayout, ReaderCache, Window, concat_parts, gather, load_window

__all__ = ["SampleDataset", "DEFAULT_SHUFFLE_BUFFER_ROWS"]

#: Rows a worker holds decoded: the window being served plus the one decoded ahead.
DEFAULT_SHUFFLE_BUFFER_ROWS = 131_072
_STOP = object()


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class SampleDataset(IterableDataset):
    """Shuffled batches of a table snapshot, for ``DataLoader(ds, batch_size=None, ...)``.

    The snapshot is pinned when the dataset is made; its row groups are split across
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
        snapshot: snapshot id to read (the current one if None).
        filter: a ``pyarrow.compute`` expression selecting partitions/files to read
            (pruned by partition values and statistics; rows are not filtered one by one).
        rank, world_size: override the ``torch.distributed`` process group.
        lease_seconds: the snapshot is pinned by a lease in the catalog, renewed by this
            process while the dataset lives; garbage collection keeps its files until the
            lease lapses (``lease_seconds`` after the process stops renewing it).
        follow: after the snapshot's rows, keep delivering rows of snapshots appended later
            (each once), polling every ``poll_seconds``; stop after ``follow_idle_seconds``
            without new data (None: never). Appended files are picked up at each poll; rows
            of a file that compaction merged away before any poll saw it are not delivered,
            so run the compaction daemon with an interval well above ``poll_seconds``.
    """

    def __init__(self, table: Any, features: Sequence[str] | None = None, batch_size: int = 4096, shuffle: bool = True,
                 seed: int = 0, shuffle_buffer_rows: int = DEFAULT_SHUFFLE_BUFFER_ROWS, drop_last: bool = False,
                 snapshot: int | None = None, filter: pc.Expression | None = None, rank: int | None = None,
                 world_size: int | None = None, follow: bool = False, poll_seconds: float = 1.0,
                 follow_idle_seconds: float | None = None, lease_seconds: float = 300.0) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, found {batch_size}")
        self.table_name = table.name
        self.store_root = table.store.root
        scan = table.scan(columns=features, filter=filter, snapshot=snapshot)
        plan = scan.plan()
        self.snapshot_id = plan.snapshot_id
        self.schema = scan.out_schema
        self.layout = FeatureLayout.of(list(self.schema))
        if not self.layout.labels and not self.layout.dense and not self.layout.sparse:
            raise SampleStoreError("a SampleDataset needs at least one dense, sparse, sequence or label feature")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.window_rows = max(self.batch_size, int(shuffle_buffer_rows) // 2)
        self.drop_last = drop_last
        self._rank, self._world = rank, world_size
        self.follow = follow
        self.poll_seconds = poll_seconds
        self.follow_idle_seconds = follow_idle_seconds
        self._filter = filter
        # Plain arrays: DataLoader workers copy this object, and arrays do not grow on read.
        self._paths = [t.path for t in plan.tasks]
        files = table._catalog.files(table.name, self.snapshot_id)
        by_id = {f.file_id: f for f in files}
        unit_file, unit_rg, unit_rows = [], [], []
        self._live: dict[int, np.ndarray] = {}  # unit -> live rows, for units with deleted rows
        for i, t in enumerate(plan.tasks):
            start = 0
            f = by_id[t.file_id]
            if f.row_group_size or f.num_row_groups <= 1:
                rg_rows = f.row_group_rows()
            else:  # catalogs older than the row_group_size column: ask the file
                from ..format import FileReader
                with FileReader(t.path) as r:
                    rg_rows = [int(x) for x in r.row_group_rows]
            for rg, n in enumerate(rg_rows):
                if t.deleted is not None:
                    a, b = np.searchsorted(t.deleted, [start, start + n])
                    if b > a:
                        keep = np.ones(n, dtype=bool)
                        keep[t.deleted[a:b] - start] = False
                        self._live[len(unit_rows)] = np.flatnonzero(keep)
                        n = int(keep.sum())
                unit_file.append(i)
                unit_rg.append(rg)
                unit_rows.append(n)
                start += int(rg_rows[rg])
        self._unit_file = np.asarray(unit_file, dtype=np.int32)
        self._unit_rg = np.asarray(unit_rg, dtype=np.int32)
        self._unit_rows = np.asarray(unit_rows, dtype=np.int64)
        self._seen_file_ids = np.asarray(sorted(by_id), dtype=np.int64)
        from ..table.lease import Lease
        self._lease = Lease(table._catalog, table.name, self.snapshot_id, ttl=lease_seconds)
        # Made here, before a DataLoader forks workers, so they and this process share it.
        self._ring = _make_ring()
        self.epoch = 0
        self._next_batch = 0  # rank-level index of the next batch to deliver (resume point)
        self._role: int | None = None  # planned worker this process plays (from a per-worker state)

    # -- public ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release the snapshot lease now (it also lapses by itself once not renewed)."""
        self._lease.release()

    def __getstate__(self) -> dict[str, Any]:
        # Copies in spawned workers do not own the lease; only the creating process renews it.
        state = dict(self.__dict__)
        state["_lease"] = self._lease.detached()
        state.pop("_reader_cache", None)
        state["_ring"] = None  # an anonymous mapping reaches forked workers only
        return state

    @property
    def num_rows(self) -> int:
        """Rows in the pinned snapshot (after file pruning)."""
        return int(self._unit_rows.sum())

    def set_epoch(self, epoch: int) -> None:
        """Use the order of epoch ``epoch`` (call before each epoch, as with DistributedSampler)."""
        self.epoch = int(epoch)
        self._next_batch = 0
        self._role = None

    def rank_world(self) -> tuple[int, int]:
        """(rank, world size) used for sharding."""
        r, w = _dist_rank_world()
        return (self._rank if self._rank is not None else r, self._world if self._world is not None else w)

    def __len__(self) -> int:
        """Batches this rank yields per epoch (the same on every rank)."""
        from .sharding import rank_batch_sizes
        rank, world = self.rank_world()
        return len(rank_batch_sizes(self.num_rows, self.batch_size, world, rank, self.drop_last)[2])

    def state_dict(self) -> dict[str, Any]:
        """Position to resume from: epoch and the next batch index of this rank's epoch.

        In a DataLoader worker (e.g. under torchdata's ``StatefulDataLoader``) the state is
        that worker's; in the main process with ``num_workers=0`` it is the iterator's. With a
        plain multi-worker DataLoader use :meth:`state_at` on the last batch consumed.
        """
        state = {"epoch": self.epoch, "next_batch": self._next_batch, "seed": self.seed,
                 "snapshot_id": self.snapshot_id}
        if get_worker_info() is not None and self._role is not None:
            state["worker"] = self._role
        return state

    @staticmethod
    def state_at(batch: Batch) -> dict[str, Any]:
        """The state right after ``batch`` was consumed (works with any DataLoader)."""
        return {"epoch": batch.epoch, "next_batch": batch.index + 1}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at a :meth:`state_dict` / :meth:`state_at` position."""
        if "snapshot_id" in state and state["snapshot_id"] != self.snapshot_id:
            raise SampleStoreError(f"state was saved on snapshot {state['snapshot_id']}, this dataset reads "
                                   f"snapshot {self.snapshot_id}: build the dataset with snapshot={state['snapshot_id']}")
        self.epoch = int(state["epoch"])
        self._next_batch = int(state["next_batch"])
        self._role = int(state["worker"]) if "worker" in state else None

    # -- iteration ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        self._in_worker = info is not None
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
        plan = plan_worker(self._unit_rows, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle,
                           window_rows=self._window_rows_aligned(), batch_size=self.batch_size, rank=rank, world=world,
                           worker=role, num_workers=num_workers, drop_last=self.drop_last)
        skip = int(np.searchsorted(plan.batch_index, start))  # own batches already delivered
        for batch in self._epoch_batches(plan, skip, rank, role):
            self._next_batch = batch.index + 1
            yield batch
        self._next_batch = 0
        self._role = None
        if self.follow:
            yield from self._follow(rank, world, worker, num_workers)

    def _window_rows_aligned(self) -> int:
        # Windows hold whole batches where possible, so few batches span two windows.
        b = self.batch_size
        return max(b, (self.window_rows // b) * b)

    def _epoch_batches(self, plan: Any, skip: int, rank: int, worker: int) -> Iterator[Batch]:
        sizes, index = plan.batch_sizes, plan.batch_index
        if skip >= len(sizes):
            return
        wrows = plan.window_rows
        windows = split_windows(plan.pieces, wrows)
        rows_before = int(sizes[:skip].sum())
        first_window, offset = divmod(rows_before, wrows)
        perm_of = lambda j, n: (epoch_rng(self.seed, self.epoch, rank, worker, j).permutation(n)  # noqa: E731
                                if self.shuffle else np.arange(n))
        source = _Prefetch(lambda j: load_window(windows[j], self._paths, self._unit_file, self._unit_rg, self.layout,
                                                 self._readers(), self._live), range(first_window, len(windows)))
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
                        win = source.next()
                        perm = perm_of(j, win.num_rows)
                        pos = 0
                    take = min(need, win.num_rows - pos)
                    parts.append(gather(win, perm[pos: pos + take], self.layout, shared=self._in_worker,
                                        claim=self._claim))
                    pos += take
                    need -= take
                if not parts:
                    parts.append(gather(win, np.empty(0, np.int64), self.layout, shared=self._in_worker))
                yield self._to_batch(concat_parts(parts, len(self.layout.sparse)), int(index[b]))
        finally:
            source.close()

    def _readers(self) -> ReaderCache:
        cache = getattr(self, "_reader_cache", None)
        if cache is None or getattr(self, "_reader_pid", None) != os.getpid():
            cache = ReaderCache()
            self._reader_cache, self._reader_pid = cache, os.getpid()
        return cache

    def _to_batch(self, a: dict[str, Any], index: int) -> Batch:
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
        batch = Batch(
            dense=tensor(a["dense"]),
            sparse=SparseFeatures([f.name for f in self.layout.sparse], tensor(a["values"]), tensor(a["lengths"]),
                                  tensor(a["weights"]) if a["weights"] is not None else None),
            labels=tensor(a["labels"]),
            embeddings={k: tensor(v) for k, v in a["embeddings"].items()},
            extras={k: (v.tolist() if v.dtype == object else tensor(v)) for k, v in a["extras"].items()},
            dense_names=names,
            epoch=self.epoch,
            index=index,
        )
        if arena is not None and arena.slot is not None:
            batch._shared_slot = arena.slot  # pickled as offsets into the ring (see ring.py)
        return batch

    # -- online training ------------------------------------------------------------------
    def _follow(self, rank: int, world: int, worker: int, num_workers: int) -> Iterator[Batch]:
        """Rows of files appended after the pinned snapshot, each once, split by file."""
        from ..table import open_store

        table = open_store(self.store_root, create=False).table(self.table_name)
        seen = set(self._seen_file_ids.tolist())
        slot, slots = rank * num_workers + worker, world * num_workers
        idle_since = time.monotonic()
        index = len(self)
        while True:
            snap = table.current_snapshot_id
            scan = table.scan(columns=self.schema.names, filter=self._filter, snapshot=snap)
            files = {f.file_id: f for f in table._catalog.files(table.name, snap)}
            # Rows arrive by appends; files made by compaction hold rows already delivered.
            new = [t for t in scan.plan().tasks if t.file_id not in seen
                   and files[t.file_id].added_snapshot > self.snapshot_id
                   and files[t.file_id].added_by in ("append", "stream-append")]
            for t in scan.plan().tasks:
                seen.add(t.file_id)
            mine = [t for t in new if t.file_id % slots == slot]
            if mine:
                idle_since = time.monotonic()
                for batch in self._follow_files(mine, [files[t.file_id] for t in mine], index):
                    index = batch.index + 1
                    yield batch
            elif self.follow_idle_seconds is not None and time.monotonic() - idle_since > self.follow_idle_seconds:
                return
            else:
                time.sleep(self.poll_seconds)

    def _follow_files(self, tasks: list[Any], files: list[Any], first_index: int) -> Iterator[Batch]:
        paths = [t.path for t in tasks]
        uf, ur, rows = [], [], []
        for i, f in enumerate(files):
            for rg, n in enumerate(f.row_group_rows()):
                uf.append(i)
                ur.append(rg)
                rows.append(n)
        pieces = np.stack([np.arange(len(rows)), np.zeros(len(rows), np.int64), np.asarray(rows)], axis=1).astype(np.int64)
        index = first_index
        readers = ReaderCache()
        try:
            for piece_set in split_windows(pieces, self._window_rows_aligned()):
                win = load_window(piece_set, paths, np.asarray(uf), np.asarray(ur), self.layout, readers)
                perm = epoch_rng(self.seed, self.epoch, index).permutation(win.num_rows) if self.shuffle else np.arange(win.num_rows)
                for s in range(0, win.num_rows, self.batch_size):
                    yield self._to_batch(gather(win, perm[s: s + self.batch_size], self.layout,
                                                shared=get_worker_info() is not None), index)
                    index += 1
        finally:
            readers.close()


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

"""The plan of one epoch: which rows each rank and worker reads, in what order, in what batches.

Everything here is plain numpy on plain arrays (no per-row Python, no lists of objects
copied into workers) and deterministic for a given (seed, epoch, world size, workers).

1. **Units** are the row groups of the pinned snapshot in table order (files by id, row
   groups in order).
2. **Unit order** (:func:`stratified_order`): the table is cut into ``k`` strata of
   consecutive units, ``k`` = units per shuffle window; each stratum's units get random
   keys spread evenly over [0, 1) and all units are sorted by key. Every window of the
   epoch thus holds units from every part of the table, in random order: no part of the
   table is over-represented early or late in an epoch (a plain random block order does
   that by chance, which shows up as rank correlation between table and output position).
3. **Ranks**: the units' rows laid end to end in that order are cut into ``world``
   contiguous ranges of equal size (+-1 row). A unit on a boundary is split between ranks.
4. **Batches**: every rank yields the same number of batches ``K``. Without ``drop_last``,
   ``K = ceil(rows / (batch_size * world))``; a rank's batches are full except its last,
   which holds the remainder; where that would be empty the rank's rows are spread evenly
   over its ``K`` batches instead. Every row is delivered exactly once. With ``drop_last``,
   ``K = rows // (batch_size * world)`` full batches per rank; the rows left over (fewer than
   ``batch_size * world``, at the end of the epoch's random order) are skipped this epoch.
5. **Workers**: batch ``i`` of a rank is made by DataLoader worker ``i % num_workers``, so
   the DataLoader's in-order round robin yields the rank's batches in order ``0, 1, 2 ...``
   and a resume position is just a batch index. Each worker reads a contiguous part of the
   rank's rows holding exactly the rows of its batches.
6. **Windows**: a worker reads its rows in windows of ``window_rows``; each window is fully
   permuted (seeded by seed, epoch, rank, worker and window) and batches are cut from the
   permuted windows in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["stratified_order", "rank_batch_sizes", "WorkerPlan", "plan_worker", "epoch_rng"]


def epoch_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator seeded by ``seed`` and further integers (epoch, rank, worker, window)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *[int(k) & 0xFFFFFFFF for k in keys]])


def stratified_order(rows: np.ndarray, window_rows: int, rng: np.random.Generator) -> np.ndarray:
    """A random order of units in which every stretch of ``window_rows`` draws on the whole table."""
    n = len(rows)
    if n <= 1:
        return np.arange(n, dtype=np.int64)
    total = float(rows.sum())
    k = int(np.clip(round(window_rows / max(1.0, total / n)), 1, n))
    # Strata of consecutive units holding about equal numbers of rows.
    starts = np.concatenate([[0.0], np.cumsum(rows)[:-1]])
    stratum = np.minimum((starts * k / max(total, 1.0)).astype(np.int64), k - 1)
    key = np.empty(n, dtype=np.float64)
    for s in np.unique(stratum):
        members = np.flatnonzero(stratum == s)
        m = len(members)
        key[members] = (rng.permutation(m) + rng.random(m)) / m
    return np.argsort(key, kind="stable").astype(np.int64)


def rank_batch_sizes(total: int, batch_size: int, world: int, rank: int, drop_last: bool) -> tuple[int, int, np.ndarray]:
    """(first row, row count, batch sizes) of one rank's share of an epoch of ``total`` rows."""
    if batch_size < 1 or world < 1 or not 0 <= rank < world:
        raise ValueError(f"need batch_size >= 1 and 0 <= rank < world; found {batch_size}, {rank}, {world}")
    if drop_last:
        k = total // (batch_size * world)
        return rank * k * batch_size, k * batch_size, np.full(k, batch_size, dtype=np.int64)
    k = -(-total // (batch_size * world)) if total else 0
    base, extra = divmod(total, world)
    rows = base + (1 if rank < extra else 0)
    start = rank * base + min(rank, extra)
    if k == 0:
        return start, rows, np.zeros(0, dtype=np.int64)
    sizes = np.full(k, batch_size, dtype=np.int64)
    last = rows - (k - 1) * batch_size
    if last >= 1:
        sizes[-1] = last
    else:
        sizes[:] = rows // k
        sizes[: rows % k] += 1
    return start, rows, sizes


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker reads and yields in one epoch.

    Attributes:
        pieces: int64 ``[M, 3]``: (unit, first row, end row) within each unit, in reading order.
        batch_sizes: sizes of the worker's batches, in order.
        batch_index: each batch's index in the rank's epoch (``worker + i * num_workers``).
        window_rows: rows per shuffle window.
    """

    pieces: np.ndarray
    batch_sizes: np.ndarray
    batch_index: np.ndarray
    window_rows: int

    @property
    def num_rows(self) -> int:
        return int(self.batch_sizes.sum())


def _pieces(order: np.ndarray, rows: np.ndarray, a: int, b: int) -> np.ndarray:
    """Pieces of units covering rows [a, b) of the units laid end to end in ``order``."""
    if b <= a:
        return np.zeros((0, 3), dtype=np.int64)
    seq = rows[order]
    cum = np.concatenate([[0], np.cumsum(seq)])
    i0 = int(np.searchsorted(cum, a, side="right")) - 1
    i1 = int(np.searchsorted(cum, b, side="left"))
    idx = np.arange(i0, i1)
    lo = np.maximum(a, cum[idx]) - cum[idx]
    hi = np.minimum(b, cum[idx + 1]) - cum[idx]
    out = np.stack([order[idx], lo, hi], axis=1).astype(np.int64)
    return out[out[:, 2] > out[:, 1]]


def plan_worker(rows: np.ndarray, *, seed: int, epoch: int, shuffle: bool, window_rows: int, batch_size: int,
                rank: int, world: int, worker: int, num_workers: int, drop_last: bool) -> WorkerPlan:
    """The plan of one worker of one rank for one epoch (see the module docstring)."""
    rows = np.asarray(rows, dtype=np.int64)
    total = int(rows.sum())
    order = stratified_order(rows, window_rows, epoch_rng(seed, epoch)) if shuffle else np.arange(len(rows))
    start, _count, sizes = rank_batch_sizes(total, batch_size, world, rank, drop_last)
    k = len(sizes)
    per_worker_rows = [int(sizes[w::num_workers].sum()) for w in range(num_workers)]
    a = start + sum(per_worker_rows[:worker])
    b = a + per_worker_rows[worker]
    idx = np.arange(worker, k, num_workers, dtype=np.int64)
    return WorkerPlan(_pieces(order, rows, a, b), sizes[worker::num_workers].copy(), idx, int(window_rows))


def split_windows(pieces: np.ndarray, window_rows: int) -> list[np.ndarray]:
    """Cut a worker's pieces into windows of ``window_rows`` rows (splitting pieces as needed)."""
    windows: list[np.ndarray] = []
    cur: list[np.ndarray] = []
    room = window_rows
    for unit, lo, hi in pieces.tolist():
        while hi > lo:
            take = min(hi - lo, room)
            cur.append(np.array([unit, lo, lo + take], dtype=np.int64))
            lo += take
            room -= take
            if room == 0:
                windows.append(np.stack(cur))
                cur, room = [], window_rows
    if cur:
        windows.append(np.stack(cur))
    return windows

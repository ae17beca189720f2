"""Lance contenders of the loader benchmark (``pylance``, the ``[lance]`` extra).

Two ways to train from a Lance dataset, each producing the same
:class:`~samplestore.torch.Batch` as the Parquet baseline through the same vectorised
conversion (:class:`~samplestore.bench.loader.ArrowBatches`), so the contenders differ only
in how they read:

* :class:`LanceRangeLoader`: Lance's own ``lance.torch.data.LanceDataset`` with its
  ``ShardedBatchSampler(randomize=True)``: the table cut into ``batch_size``-row ranges read
  in a shuffled order. Fast, but every batch is one contiguous range of the table.
* :class:`LanceTakeLoader`: ``LanceDataset.take()`` of consecutive slices of a true random
  permutation of the rows: the order of a full shuffle, at the cost of random reads.

A DataLoader worker ``w`` of ``W`` reads ranges (batches) ``i`` with ``i % W == w``. The
dataset is opened in the process that iterates, never before the DataLoader forks: Lance's
Rust runtime does not survive a fork.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import torch

from ..extras import require_extra
from ..schema import Schema
from .loader import ArrowBatches

__all__ = ["require_lance", "write_lance", "LanceRangeLoader", "LanceTakeLoader"]


def require_lance() -> Any:
    """Import ``lance`` or raise MissingDependency naming the ``[lance]`` extra."""
    return require_extra("lance", "the Lance contenders of samplestore bench loader", extra="lance",
                         instead="the bench reports them as skipped without it")


def write_lance(path: str, data: pa.Table) -> None:
    """Append ``data`` to the Lance dataset at ``path`` (created by the first call)."""
    lance = require_lance()
    lance.write_dataset(data, path, mode="append" if os.path.exists(path) else "create")


def _worker() -> tuple[int, int]:
    info = torch.utils.data.get_worker_info()
    return (info.id, info.num_workers) if info else (0, 1)


class LanceRangeLoader(torch.utils.data.IterableDataset):
    """Lance's ``LanceDataset`` reading shuffled ``batch_size``-row ranges (see the module docstring)."""

    def __init__(self, path: str, schema: Schema, batch_size: int, seed: int = 0) -> None:
        super().__init__()
        self.path = path
        self.convert = ArrowBatches(schema)
        self.batch_size = batch_size
        self.seed = seed

    def __iter__(self) -> Iterator[Any]:
        require_lance()
        from lance.sampler import ShardedBatchSampler
        from lance.torch.data import LanceDataset

        class RangeSampler(ShardedBatchSampler):
            # LanceDataset always passes with_row_id (False by default), and pylance 14's
            # ShardedBatchSampler warns about any value, which pytest's warnings-as-errors
            # would turn into a failure: we never ask for row ids, so drop the argument.
            def __call__(self, dataset: Any, *args: Any, with_row_id: Any = None, **kwargs: Any) -> Any:
                return super().__call__(dataset, *args, **kwargs)

        w, nw = _worker()
        ds = LanceDataset(self.path, self.batch_size, columns=list(self.convert.names), to_tensor_fn=None,
                          sampler=RangeSampler(rank=w, world_size=nw, randomize=True, seed=self.seed))
        for rb in ds:
            yield self.convert.batch(self.convert.columns(pa.Table.from_batches([rb])))


class LanceTakeLoader(torch.utils.data.IterableDataset):
    """``take()`` of consecutive ``batch_size`` slices of a random permutation of all rows."""

    def __init__(self, path: str, schema: Schema, batch_size: int, rows: int, seed: int = 0) -> None:
        super().__init__()
        self.path = path
        self.convert = ArrowBatches(schema)
        self.batch_size = batch_size
        self.rows = rows
        self.seed = seed

    def __iter__(self) -> Iterator[Any]:
        lance = require_lance()
        w, nw = _worker()
        ds = lance.dataset(self.path)
        perm = np.random.default_rng(self.seed).permutation(self.rows)
        columns = list(self.convert.names)
        for i, s in enumerate(range(0, self.rows, self.batch_size)):
            if i % nw == w:
                yield self.convert.batch(self.convert.columns(ds.take(perm[s: s + self.batch_size], columns=columns)))

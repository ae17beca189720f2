"""Training input: shuffled KeyedJaggedTensor batches for PyTorch trainers.

``dataset`` (SampleDataset), ``sharding`` (epoch plans across ranks and workers),
``window`` (shuffle windows and batch assembly), ``kinds`` (how each feature kind is
batched, registered by kind name), ``batch`` (Batch), ``prefetch`` (DevicePrefetcher).
"""

from __future__ import annotations

from .batch import Batch, SparseFeatures
from .dataset import DEFAULT_SHUFFLE_BUFFER_ROWS, SampleDataset
from .prefetch import DevicePrefetcher

__all__ = ["SampleDataset", "Batch", "SparseFeatures", "DevicePrefetcher", "DEFAULT_SHUFFLE_BUFFER_ROWS"]

"""Training input: shuffled KeyedJaggedTensor batches for PyTorch trainers.

``dataset`` (SampleDataset), ``sharding`` (epoch plans across ranks and workers),
``window`` (shuffle windows and batch assembly), ``kinds`` (how each feature kind is
batched, registered by kind name), ``batch`` (Batch), ``prefetch`` (DevicePrefetcher).
"""

from __future__ import annotations

from ..extras import require_extra

# torch is an extra: without it the rest of samplestore (write, scan, compact, export) works,
# and this import says what to install rather than failing deep inside a module.
require_extra("torch", "samplestore.torch (SampleDataset, Batch, DevicePrefetcher)",
              instead="storage, scans, compaction and export work without it")

from .batch import Batch, DedupIds, SparseFeatures
from .dataset import DEFAULT_SHUFFLE_BUFFER_ROWS, SampleDataset
from .prefetch import DevicePrefetcher

__all__ = ["SampleDataset", "Batch", "SparseFeatures", "DedupIds", "DevicePrefetcher", "DEFAULT_SHUFFLE_BUFFER_ROWS"]

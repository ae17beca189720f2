"""samplestore: columnar sample storage for recommendation-model training.

Write samples into compacted ``.ssf`` files under a transactional catalog, and stream them
back shuffled to PyTorch trainers in KeyedJaggedTensor layout.
"""

from __future__ import annotations

import logging as _logging

from . import format
from .errors import (
    CatalogError,
    CommitConflict,
    CorruptFileError,
    FormatVersionError,
    LeaseExpired,
    MissingDependency,
    SampleStoreError,
    SchemaError,
    SnapshotNotFound,
    StateMismatch,
    TableExists,
    TableNotFound,
    UnsupportedStorage,
    DataQualityError,
)
from .schema import Dense, Embedding, Feature, Label, Scalar, Schema, Sequence, Sparse
from .table import Scan, Store, StreamingWriter, Table, open_store

# Registers compaction, expiry and GC behind Table.compact() and friends (table/ lies below
# compaction/ and never imports it; see samplestore.table.maintenance).
from . import compaction  # noqa: F401
from .table.maintenance import register_executor


def _ray_compact():  # Table.compact(executor="ray"): samplestore.ray, imported on first use
    from .extras import require_extra

    require_extra("ray", 'Table.compact(executor="ray")')
    from .ray import compact

    return compact


register_executor("ray", _ray_compact)

from .version import __version__

# A library's warnings go where the application's logging sends them. Without a handler
# anywhere, Python's last-resort handler printed each to stderr, after the CLI had already
# printed it ("warning: ..."); an application that configures logging (the compaction
# daemon's basicConfig) still gets every record, which propagate to the root logger.
_logging.getLogger("samplestore").addHandler(_logging.NullHandler())

__all__ = [
    "format",
    "open_store",
    "Store",
    "Table",
    "Scan",
    "StreamingWriter",
    "Schema",
    "Feature",
    "Dense",
    "Sparse",
    "Sequence",
    "Embedding",
    "Label",
    "Scalar",
    "SampleStoreError",
    "SchemaError",
    "CorruptFileError",
    "FormatVersionError",
    "CatalogError",
    "CommitConflict",
    "TableNotFound",
    "TableExists",
    "SnapshotNotFound",
    "LeaseExpired",
    "StateMismatch",
    "MissingDependency",
    "UnsupportedStorage",
    "DataQualityError",
]

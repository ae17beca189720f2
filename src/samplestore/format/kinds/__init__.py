"""Feature kinds in the file format, registered by kind name (see :mod:`.base`).

Importing this package registers the built-in kinds: dense, label and embedding
(:mod:`.vector`), sparse and sequence (:mod:`.jagged`), scalar (:mod:`.scalar`). A new kind
is a ``Feature`` subclass registered in schema.py's kind table, one module here (or anywhere)
that subclasses :class:`KindCodec` and calls :func:`register_kind`, and, for training, an
assembler registered in ``samplestore.torch``.
"""

from __future__ import annotations

from . import base, jagged, scalar, vector  # noqa: F401  (registers them)
from .base import (
    ArrayStreams, ChunkStats, ChunkStreams, ColumnData, KindCodec, Streams, StreamSpec, default_column, kind_codec,
    register_kind, registered_kinds, unregister_kind,
)

__all__ = list(base.__all__)

"""The samplestore exception tree.

Every error samplestore raises on purpose is a :class:`SampleStoreError`. Each member also
subclasses the built-in exception a caller would naturally catch (``ValueError`` for bad
input, ``OSError`` for a damaged file, ``KeyError``-free lookups ...), as zarr and pyarrow do.
"""

from __future__ import annotations

__all__ = [
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


class SampleStoreError(Exception):
    """Root of every error samplestore raises on purpose."""


class SchemaError(SampleStoreError, ValueError):
    """Data or a schema definition does not match what the schema expects."""


class CorruptFileError(SampleStoreError, OSError):
    """A file is truncated, damaged or not an .ssf file.

    Attributes name the place: ``path``, ``row_group`` and ``column`` (``None`` where the
    damage is not inside one chunk, e.g. a broken footer).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        row_group: int | None = None,
        column: str | None = None,
    ) -> None:
        where = []
        if path is not None:
            where.append(f"file {path!r}")
        if row_group is not None:
            where.append(f"row group {row_group}")
        if column is not None:
            where.append(f"column {column!r}")
        full = f"{message} ({', '.join(where)})" if where else message
        super().__init__(full)
        self.path = path
        self.row_group = row_group
        self.column = column


class FormatVersionError(CorruptFileError):
    """The file is an .ssf file written by a newer, unsupported format version."""


class CatalogError(SampleStoreError, RuntimeError):
    """The catalog cannot do what was asked (bad name, broken database, ...)."""


class CommitConflict(CatalogError):
    """A commit lost an optimistic-concurrency race and could not be retried safely."""


class TableNotFound(CatalogError, LookupError):
    """No table of that name exists; the message lists the tables that do."""


class TableExists(CatalogError):
    """A table of that name exists already."""


class SnapshotNotFound(CatalogError, LookupError):
    """No snapshot matches the id or time asked for; the message lists what exists."""


class LeaseExpired(CatalogError):
    """A reader's lease on its snapshot lapsed (not renewed in time), so the files it reads
    may have been garbage-collected: the read stops rather than return partial data."""


class StateMismatch(SampleStoreError, ValueError):
    """A saved loader position belongs to another table, snapshot, seed or batch layout."""


class MissingDependency(SampleStoreError, ImportError):
    """An optional dependency (torchrec, matplotlib, pandas, ...) is not installed."""


class UnsupportedStorage(SampleStoreError, ValueError):
    """A store location names a storage samplestore has no backend for (a URI scheme)."""


class DataQualityError(SampleStoreError, ValueError):
    """Data broke a table's expectation whose action is ``reject`` (nothing was committed),
    or an expectation is not valid for the table (nothing was stored). The message names the
    partition, column, measured value and bound, or the rule and field at fault."""

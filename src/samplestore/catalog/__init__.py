"""The metadata catalog: an interface, a registry of backends, and the embedded SQLite backend.

Open a catalog with :func:`open_catalog` (a local folder: the SQLite catalog inside it);
code above this package uses only what :class:`Catalog` declares.
"""

from __future__ import annotations

from .base import Catalog, ColumnStats, DataFile, RetentionPolicy, Snapshot, TableMeta, Tag
from .registry import backend_schemes, open_catalog, register_backend
from .sqlite import SQLiteCatalog  # registers itself for plain folders

__all__ = ["Catalog", "open_catalog", "register_backend", "backend_schemes", "SQLiteCatalog", "TableMeta", "Snapshot",
           "DataFile", "ColumnStats", "Tag", "RetentionPolicy"]

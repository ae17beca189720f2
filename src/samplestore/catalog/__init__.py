"""The metadata catalog: an interface and its embedded SQLite backend."""

from __future__ import annotations

from .base import Catalog, ColumnStats, DataFile, RetentionPolicy, Snapshot, TableMeta, Tag
from .sqlite import SQLiteCatalog

__all__ = ["Catalog", "SQLiteCatalog", "TableMeta", "Snapshot", "DataFile", "ColumnStats", "Tag", "RetentionPolicy"]

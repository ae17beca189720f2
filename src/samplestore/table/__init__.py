"""Tables: stores, snapshots, writers and scans over .ssf files and the catalog."""

from __future__ import annotations

from .scan import FileTask, Scan, ScanPlan
from .store import Store, open_store
from .table import Table
from .writer import StreamingWriter

__all__ = ["Store", "open_store", "Table", "Scan", "ScanPlan", "FileTask", "StreamingWriter"]

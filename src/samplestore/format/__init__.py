"""The .ssf columnar file format: writer, reader and encodings (see docs/FORMAT.md)."""

from __future__ import annotations

from ..storage import Storage
from .columns import ColumnData
from .reader import FileReader, RowGroupBytes, footer_bytes_estimate, read_file
from .spec import VERSION_MAJOR
from .writer import DEFAULT_ROW_GROUP_ROWS, TEMP_SUFFIX, FileInfo, FileWriter, write_file

__all__ = [
    "FileReader",
    "RowGroupBytes",
    "footer_bytes_estimate",
    "FileWriter",
    "FileInfo",
    "ColumnData",
    "read_file",
    "write_file",
    "read_metadata",
    "DEFAULT_ROW_GROUP_ROWS",
    "TEMP_SUFFIX",
    "VERSION_MAJOR",
]


def read_metadata(path: str, *, storage: Storage | None = None) -> dict:
    """Rows, row groups, size, columns and footer metadata of one file, as a dict (read
    through ``storage``, the local disk by default)."""
    with FileReader(path, storage=storage) as r:
        return {
            "path": r.path,
            "format_version": r.format_version,
            "num_rows": r.num_rows,
            "num_row_groups": r.num_row_groups,
            "file_bytes": r.file_bytes,
            "columns": r.column_names,
            "metadata": r.metadata,
        }

"""What Ray tasks share: how a task reaches the table, how it writes data files that only the
driver commits, and the plain-dict form of the file entries it sends back."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import ray

from ..catalog.base import ColumnStats, DataFile
from ..errors import SchemaError
from ..format import FileWriter
from ..schema import Schema
from ..storage import Storage
from ..table import Table, open_store
from ..table.partition import partition_path, split_by_partition
from ..table.writer import DEFAULT_TARGET_FILE_BYTES, TABLE_ROW_GROUP_ROWS, data_file_from_info, data_file_name, new_file_in

__all__ = ["TableRef", "entry_to_dict", "entry_from_dict", "write_files", "ensure_ray"]


@dataclass(frozen=True)
class TableRef:
    """How a task on any host opens the table: the store's root (a path or a URI), its
    catalog location (a folder or a catalog URI) and its storage (which carries the remote
    file system's options), and the table's name. Small and picklable: it is what travels
    to the tasks, not the driver's store, catalog connection or leases."""

    root: str
    catalog: str
    storage: Storage
    table: str

    @classmethod
    def of(cls, table: Table) -> "TableRef":
        return cls(table.store.root, table.store.catalog_location, table.storage, table.name)

    def open_table(self) -> Table:
        """The table, opened in this process (once per worker process and table: a Ray worker
        runs many tasks, and opening a catalog connection per task would cost a round trip each)."""
        key = (self.root, self.catalog, self.table, os.getpid())
        table = _opened.get(key)
        if table is None:
            store = open_store(self.root, storage=self.storage, catalog=self.catalog)
            table = _opened[key] = store.table(self.table)
        return table


_opened: dict[tuple[str, str, str, int], Table] = {}


def entry_to_dict(f: DataFile) -> dict[str, Any]:
    """A new file's catalog entry as plain, JSON-able values (what a task returns)."""
    d = dataclasses.asdict(f)
    d["partition"] = dict(f.partition)
    d["sort_key"] = list(f.sort_key)
    return d


def entry_from_dict(d: dict[str, Any]) -> DataFile:
    """The :class:`DataFile` of :func:`entry_to_dict`'s form."""
    fields = dict(d)
    fields["stats"] = {name: ColumnStats(**s) for name, s in d.get("stats", {}).items()}
    fields["sort_key"] = tuple(d.get("sort_key", ()))
    return DataFile(**fields)


def write_files(table: Table, batches: Iterable[Any], lease_id: str | None, *, schema: Schema,
                partition_by: Sequence[str], where: str, target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
                row_group_rows: int = TABLE_ROW_GROUP_ROWS, compression_level: int = 3) -> list[DataFile]:
    """Validate and encode ``batches`` into new data files of ``table`` (one open file per
    partition, rolled at ``target_file_bytes``); returns their catalog entries. Nothing is
    committed.

    The files get final, unique names carrying ``lease_id`` (the driver's writer lease), so
    GC leaves them alone while the driver lives; if this fails, the files it wrote are
    deleted (and any it could not delete are leftovers GC removes once the lease is gone).

    Raises:
        SchemaError: a batch does not match ``schema``; ``where`` and the batch's first row
            are named.
    """
    storage = table.storage
    open_files: dict[str, tuple[FileWriter, dict[str, Any]]] = {}
    done: list[DataFile] = []

    def roll(key: str) -> None:
        w, values = open_files.pop(key)
        info = w.close()
        if info.num_rows:
            done.append(data_file_from_info(info, table.dir, values))
        else:
            storage.delete(info.path)

    try:
        rows = 0
        for data in batches:
            try:
                conformed = schema.conform(data)
            except SchemaError as exc:
                raise SchemaError(f"{where}, in the batch starting at row {rows}: {exc}") from exc
            rows += conformed.num_rows
            for values, part in split_by_partition(conformed, partition_by):
                key = partition_path(values)
                if key not in open_files:
                    folder = storage.join(table.data_dir, key) if key else table.data_dir
                    path = storage.join(folder, data_file_name(lease_id))
                    w = new_file_in(storage, folder, lambda: FileWriter(
                        path, schema, row_group_rows=row_group_rows, compression_level=compression_level,
                        storage=storage))
                    open_files[key] = (w, values)
                w = open_files[key][0]
                w.write(part)
                if w.bytes_written >= target_file_bytes:
                    roll(key)
        for key in list(open_files):
            roll(key)
    except BaseException:
        for w, _values in open_files.values():
            try:
                w.abort()
            except OSError:
                pass  # a partial file left behind is a leftover GC removes
        for f in done:
            try:
                storage.delete(storage.join(table.dir, f.path))
            except OSError:
                pass  # likewise
        raise
    return done


def ensure_ray(address: str | None = None) -> None:
    """Connect to the Ray cluster at ``address`` (``"auto"``: the one this host belongs to),
    or start a local one when None, unless this process is connected already."""
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)

"""A store: a root folder holding tables, with an embedded SQLite catalog inside it (or a
catalog elsewhere, e.g. PostgreSQL, that the store names); its data files, markers and folders
are read and written through a :class:`~samplestore.storage.Storage`."""

from __future__ import annotations

import logging
import os
from typing import Any, Iterable, Mapping

from ..catalog.base import validate_table_name
from ..catalog import Catalog, open_catalog
from ..errors import TableExists
from ..schema import Schema
from ..storage import Storage, storage_for
from .partition import check_partition_columns
from .table import Table
from .verify import table_folder_problem, write_table_marker

__all__ = ["Store", "open_store", "CATALOG_ENV"]

#: The environment variable naming the catalog of stores opened without ``catalog=``.
CATALOG_ENV = "SAMPLESTORE_CATALOG"

log = logging.getLogger("samplestore.store")


class Store:
    """Tables under one root. Use :func:`open_store`.

    Attributes:
        root: the store's local folder (of the embedded catalog, unless ``catalog_uri``).
        storage: where the tables' data files, markers and folders live (a
            :class:`~samplestore.storage.LocalStorage` of ``root`` unless given).
        catalog_uri: the catalog's location when it is not the embedded one in ``root``
            (e.g. ``postgresql://...``), as given: processes reopening the store use it.
    """

    def __init__(self, root: str | os.PathLike[str], *, create: bool = False, storage: Any = None,
                 catalog: str | None = None) -> None:
        # Resolved first: a location no storage can serve is refused before a catalog is made.
        self.storage: Storage = storage_for(root if storage is None else storage)
        self.root = os.path.abspath(os.fspath(root))
        self.catalog_uri: str | None = catalog if catalog is not None else (os.environ.get(CATALOG_ENV) or None)
        self.catalog: Catalog = open_catalog(self.root if self.catalog_uri is None else self.catalog_uri,
                                             create=create)

    def __repr__(self) -> str:
        if self.catalog_uri is None:
            return f"Store({self.root!r})"
        return f"Store({self.root!r}, catalog={self.catalog.location!r})"  # the location shows no password

    def table_dir(self, name: str) -> str:
        """The folder of table ``name`` in :attr:`storage`."""
        return self.storage.join(self.storage.root, "tables", name)

    def create_table(self, name: str, schema: Schema, partition_by: Iterable[str] = (), *,
                     exist_ok: bool = False, properties: Mapping[str, Any] | None = None) -> Table:
        """Create a table (its folder and catalog entry).

        Raises:
            TableExists: unless ``exist_ok`` (then the existing table is returned).
            SchemaError: a partition column is not a scalar int/bool/string/timestamp feature.
        """
        validate_table_name(name)
        parts = tuple(partition_by)
        check_partition_columns(schema, parts)
        try:
            meta = self.catalog.create_table(name, schema, parts, properties)
        except TableExists:
            if exist_ok:
                return self.table(name)
            raise
        table_dir = self.table_dir(name)
        self.storage.make_dirs(self.storage.join(table_dir, "data"))
        # Claim the folder for this catalog and this table: GC leaves alone what a marker
        # says belongs to another (an old table of the same name, another store's catalog).
        write_table_marker(self.storage, table_dir, self.catalog.catalog_id, name, meta.created_at)
        return Table(self, name)

    def table(self, name: str) -> Table:
        """An existing table; TableNotFound lists the tables that exist."""
        return Table(self, name)

    def tables(self) -> list[str]:
        """Names of all tables."""
        return self.catalog.table_names()

    def drop_table(self, name: str, *, purge: bool = True, force: bool = False) -> None:
        """Remove a table from the catalog and (with ``purge``) its files from disk.

        The folder is not purged when its marker says it is not this catalog's table (it is
        left, with a warning, for whoever owns it).

        Raises:
            TableNotFound: no such table.
            CatalogError: live readers hold leases on the table (the message names them),
                unless ``force``.
        """
        validate_table_name(name)
        problem = table_folder_problem(Table(self, name)) if purge else None
        self.catalog.drop_table(name, force=force)
        if purge and problem is None:
            self.storage.delete_tree(self.table_dir(name))
        elif purge:
            log.warning("dropped table %s from the catalog but left its folder: %s", name, problem)

    def gc(self, grace_seconds: float = 3600.0) -> list[dict]:
        """Garbage-collect every table (see :meth:`Table.gc`)."""
        return [self.table(n).gc(grace_seconds) for n in self.tables()]

    def close(self) -> None:
        """Close this process's catalog connection."""
        self.catalog.close()


def open_store(root: str | os.PathLike[str], *, create: bool = False, storage: Any = None,
               catalog: str | None = None) -> Store:
    """Open the store at ``root``.

    Args:
        create: make a new store (a folder with an embedded SQLite catalog, or the catalog
            ``catalog`` names) if there is none. Off by default, so that a mistyped path fails
            instead of making an empty store.
        storage: where the tables' data files live, if not in ``root`` on the local disk: a
            :class:`~samplestore.storage.Storage` (e.g. ``ArrowStorage(pyarrow_fs, "prefix")``)
            or anything :func:`~samplestore.storage.storage_for` takes. The catalog stays in
            ``root``. Every process opening the store must give the same storage.
        catalog: where the catalog lives if not in ``root``: a URI of a registered backend,
            e.g. ``postgresql://user@host:5432/db?schema=NAME`` for a catalog many hosts share
            (one store per PostgreSQL schema, ``samplestore`` by default). Default: the
            environment variable ``SAMPLESTORE_CATALOG``, else the SQLite file in ``root``.
            Every process opening the store must give the same catalog.

    Raises:
        CatalogError: no store at ``root`` (and not ``create``), or its ``catalog.db`` is
            empty, damaged or not a samplestore catalog (never overwritten); a catalog
            server is unreachable or holds something else.
        UnsupportedStorage: ``root`` or ``storage`` is a URI no storage backend serves.
    """
    return Store(root, create=create, storage=storage, catalog=catalog)

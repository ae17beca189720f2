"""A store: a root (a local folder, or a prefix on an object store) holding tables, with a
catalog (an embedded SQLite catalog inside a local root by default, or any catalog location
:func:`~samplestore.catalog.open_catalog` takes); its data files, markers and folders are read
and written through a :class:`~samplestore.storage.Storage`."""

from __future__ import annotations

import logging
import os
from typing import Any, Iterable, Mapping

from ..catalog.base import validate_table_name
from ..catalog import Catalog, open_catalog
from ..errors import CatalogError, TableExists
from ..schema import Schema
from ..storage import CachedStorage, Storage, is_remote_uri, redact, storage_for
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
        root: the store's location: an absolute local folder, or the URI it was opened with
            (``s3://bucket/prefix``; any ``user:secret@`` part removed).
        catalog_location: where the catalog is (a local folder holding ``catalog.db``, or a
            catalog URI); processes that reopen the store (DataLoader workers) use it.
        storage: where the tables' data files, markers and folders live (a
            :class:`~samplestore.storage.LocalStorage` of ``root`` unless given).
    """

    def __init__(self, root: str | os.PathLike[str], *, create: bool = False, storage: Any = None,
                 catalog: str | os.PathLike[str] | None = None, storage_options: dict[str, Any] | None = None,
                 read_cache: str | os.PathLike[str] | None = None, read_cache_bytes: int = 16 << 30) -> None:
        remote = is_remote_uri(root)
        text = root if remote else os.fspath(root)
        if not remote and str(text).startswith("file://"):
            text = str(text)[len("file://"):]
        if catalog is None:
            catalog = os.environ.get(CATALOG_ENV) or None
        if catalog is None and remote:
            raise CatalogError(f"the store at {redact(str(root))!r} is not on a local path, and its catalog cannot live "
                               "there (an embedded SQLite database needs a local file system): pass catalog= a local "
                               "folder or a catalog URI (e.g. catalog='postgresql://user@host/db'), or set "
                               "SAMPLESTORE_CATALOG")
        # Resolved first: a location no storage can serve is refused before a catalog is made.
        self.storage: Storage = storage_for(text if storage is None else storage, storage_options)
        if read_cache is not None:
            self.storage = CachedStorage(self.storage, read_cache, read_cache_bytes)
        self.root = redact(str(text)) if remote else os.path.abspath(text)
        if create and remote and self.storage.root:
            # An object store makes no folders: a store is made in a bucket that exists (its
            # first tables would fail otherwise), checked before a catalog is made for it.
            bucket = self.storage.root.split("/", 1)[0]
            try:
                found = self.storage.info(bucket)
            except OSError as exc:
                raise CatalogError(f"the store at {self.root!r} cannot be made: its bucket {bucket!r} cannot be "
                                   f"reached ({type(exc).__name__}: {exc})") from exc
            if found is None:
                raise CatalogError(f"the store at {self.root!r} cannot be made: its bucket {bucket!r} does not "
                                   "exist (create it first, e.g. `aws s3 mb`; samplestore makes no buckets)")
        location = self.root if catalog is None else os.fspath(catalog)
        self.catalog_location = location if is_remote_uri(location) else os.path.abspath(location)
        self.catalog: Catalog = open_catalog(self.catalog_location, create=create)

    def __repr__(self) -> str:
        if self.catalog_location == self.root:
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
        try:
            self.storage.make_dirs(self.storage.join(table_dir, "data"))
            # Claim the folder for this catalog and this table: GC leaves alone what a marker
            # says belongs to another (an old table of the same name, another store's catalog).
            write_table_marker(self.storage, table_dir, self.catalog.catalog_id, name, meta.created_at)
        except OSError as exc:
            # No table whose folder could not be made: the catalog entry goes too.
            self.catalog.drop_table(name, force=True)
            raise CatalogError(f"table {name!r} was not created: its folder {table_dir!r} could not be written "
                               f"({type(exc).__name__}: {exc}); check that the store's root exists and is "
                               "writable (on object storage: the bucket and the credentials)") from exc
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
               catalog: str | os.PathLike[str] | None = None, storage_options: dict[str, Any] | None = None,
               read_cache: str | os.PathLike[str] | None = None, read_cache_bytes: int = 16 << 30) -> Store:
    """Open the store at ``root``.

    Args:
        root: a local folder, a ``file://`` URI, or a URI ``pyarrow.fs`` supports
            (``s3://bucket/prefix``, ``gs://``, ``abfs://``, ``hdfs://``): the tables' files
            live there. Credentials come from the environment or the provider's config files
            (see :func:`~samplestore.storage.storage_for`), never from the catalog.
        create: make a new store (and its catalog) if there is none. Off by default, so that
            a mistyped path fails instead of making an empty store.
        catalog: where the catalog is: a local folder (an embedded SQLite ``catalog.db`` in
            it) or a catalog URI (``postgresql://user@host/db``); default ``SAMPLESTORE_CATALOG``,
            else ``root`` itself for a local root. Required for a remote root.
        storage_options: keyword arguments of the remote file system (for ``s3://``:
            ``endpoint_override``, ``region``, ``scheme``... of ``pyarrow.fs.S3FileSystem``).
        read_cache: a local folder caching the byte ranges read (at most ``read_cache_bytes``,
            least recently used out first), for training several epochs over an object
            store: a later epoch reads from it. Off by default
            (:class:`~samplestore.storage.CachedStorage`).
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
            server is unreachable or holds something else; ``root`` is remote and no
            ``catalog`` is given.
        UnsupportedStorage: ``root`` or ``storage`` is a URI no storage backend serves.
    """
    return Store(root, create=create, storage=storage, catalog=catalog, storage_options=storage_options,
                 read_cache=read_cache, read_cache_bytes=read_cache_bytes)

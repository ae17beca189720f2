"""The embedded catalog: one SQLite database (WAL mode) inside the store's root.

Safe for many processes on one host: every change runs in one ``BEGIN IMMEDIATE``
transaction, so commits are serialised by SQLite's write lock and readers see only whole
commits. Connections are per process and per thread, so a forked DataLoader worker never
shares a connection with its parent.

A store is a ``catalog.db`` holding the samplestore ``meta`` table with a known
``schema_version``. Anything else found under that name (an empty file, a file that is not
SQLite, another program's SQLite database, a catalog of a newer samplestore) is refused
with :class:`CatalogError` and left as it is; a new catalog is made only when asked
(``create=True``), and appears under its final name complete or not at all.
"""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import stat
import uuid
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import CatalogError, SnapshotNotFound, TableExists, TableNotFound
from ..schema import Schema
from . import common
from .base import (Catalog, partition_key, ColumnStats, DataFile, Quarantine, Snapshot, TableMeta, Tag, validate_table_name,
                   validate_tag_name)
from .registry import LOCAL, register_backend

__all__ = ["SQLiteCatalog", "CATALOG_FILE"]

CATALOG_FILE = "catalog.db"
#: "1": the first catalogs; "2": commit tokens in their own table, a catalog id in meta;
#: "3": snapshot tags. A version bump for tags keeps an older samplestore, which would not
#: know that tagged snapshots must survive expiry, from opening (and expiring) the catalog.
#: "4": each file's sort key (files.sort_key, a JSON list of column names); an older
#: samplestore would add files without it, and compaction would sort them again.
#: "5": quarantines (files.quarantine_id, files.released_snapshot, the quarantines table); an
#: older samplestore would read quarantined files as visible.
_SCHEMA_VERSION = "5"
_KNOWN_VERSIONS = ("1", "2", "3", "4", "5")
_SQLITE_MAGIC = b"SQLite format 3\x00"

# One statement per item: they also run inside a migration's transaction, where
# ``executescript`` cannot be used (it commits first).
_DDL = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS tables (
    name TEXT PRIMARY KEY,
    schema_json TEXT NOT NULL,
    partition_by TEXT NOT NULL,
    properties TEXT NOT NULL,
    created_at REAL NOT NULL,
    current_snapshot INTEGER NOT NULL DEFAULT 0,
    appends_replaced_upto INTEGER NOT NULL DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS snapshots (
    table_name TEXT NOT NULL,
    snapshot_id INTEGER NOT NULL,
    parent_id INTEGER,
    created_at REAL NOT NULL,
    operation TEXT NOT NULL,
    summary TEXT NOT NULL,
    schema_json TEXT NOT NULL,
    writer_id TEXT,
    commit_token TEXT,
    PRIMARY KEY (table_name, snapshot_id)
)""",
    "CREATE INDEX IF NOT EXISTS snapshots_token ON snapshots (table_name, writer_id, snapshot_id)",
    """CREATE TABLE IF NOT EXISTS files (
    file_id INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL,
    path TEXT NOT NULL,
    partition TEXT NOT NULL,
    num_rows INTEGER NOT NULL,
    file_bytes INTEGER NOT NULL,
    num_row_groups INTEGER NOT NULL,
    row_group_size INTEGER NOT NULL,
    added_by TEXT NOT NULL,
    sort_key TEXT NOT NULL DEFAULT '[]',
    added_snapshot INTEGER NOT NULL,
    removed_snapshot INTEGER,
    quarantine_id INTEGER,
    released_snapshot INTEGER,
    UNIQUE (table_name, path)
)""",
    "CREATE INDEX IF NOT EXISTS files_by_snapshot ON files (table_name, added_snapshot, removed_snapshot)",
    """CREATE TABLE IF NOT EXISTS deletes (
    table_name TEXT NOT NULL,
    file_id INTEGER NOT NULL,
    snapshot_id INTEGER NOT NULL,
    positions BLOB NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (file_id, snapshot_id)
)""",
    "CREATE INDEX IF NOT EXISTS deletes_by_table ON deletes (table_name, snapshot_id)",
    """CREATE TABLE IF NOT EXISTS leases (
    lease_id TEXT PRIMARY KEY,
    table_name TEXT NOT NULL,
    snapshot_id INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    owner TEXT NOT NULL,
    keep_later INTEGER NOT NULL DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS column_stats (
    file_id INTEGER NOT NULL,
    column_name TEXT NOT NULL,
    nulls INTEGER NOT NULL,
    missing INTEGER NOT NULL,
    value_count INTEGER NOT NULL,
    min_value,
    max_value,
    bytes INTEGER NOT NULL,
    extra TEXT NOT NULL,
    PRIMARY KEY (file_id, column_name)
)""",
    # The last commit token of each streaming writer. Snapshot rows hold tokens too, but
    # snapshots expire (the daemon expires them every pass) and a restarted writer must
    # still find where it stopped: this row lives as long as the table.
    """CREATE TABLE IF NOT EXISTS commit_tokens (
    table_name TEXT NOT NULL,
    writer_id TEXT NOT NULL,
    commit_token TEXT NOT NULL,
    snapshot_id INTEGER NOT NULL,
    committed_at REAL NOT NULL,
    PRIMARY KEY (table_name, writer_id)
)""",
    # Named snapshots: expiry keeps a tagged snapshot (and so GC its files) until the tag
    # is dropped, so a training run can be read again exactly, however long ago it ran.
    """CREATE TABLE IF NOT EXISTS tags (
    table_name TEXT NOT NULL,
    name TEXT NOT NULL,
    snapshot_id INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (table_name, name)
)""",
    # Files a commit held back for breaking an expectation (files.quarantine_id points here).
    """CREATE TABLE IF NOT EXISTS quarantines (
    quarantine_id INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL,
    partition TEXT NOT NULL,
    violations TEXT NOT NULL,
    files INTEGER NOT NULL,
    num_rows INTEGER NOT NULL,
    snapshot_id INTEGER NOT NULL,
    created_at REAL NOT NULL,
    resolution TEXT,
    resolved_snapshot INTEGER
)""",
)


# Catalog files (device, inode) this process has connected to, and the lock that orders the
# header check before the first connection (see SQLiteCatalog._open_existing).
_CONNECTED: set[tuple[int, int]] = set()
_HEADER_CHECK = threading.Lock()


def _new_header_lock_in_child() -> None:
    # A DataLoader worker forked while another thread held the lock must not wait forever.
    global _HEADER_CHECK
    _HEADER_CHECK = threading.Lock()


os.register_at_fork(after_in_child=_new_header_lock_in_child)


# Every sqlite3 error of a method is raised as a CatalogError naming the database.
_translated = common.translated(sqlite3.Error)


class SQLiteCatalog(Catalog):
    """A catalog in ``<root>/catalog.db``.

    Args:
        root: the store's root directory (created if missing when ``create`` is true).
        create: make a new, empty catalog if ``catalog.db`` does not exist. An existing file
            is never overwritten, whatever it holds.
        timeout: seconds to wait for another process's write lock before failing.

    Raises:
        CatalogError: there is no catalog and ``create`` is false; or ``catalog.db`` is empty,
            not an SQLite database, not a samplestore catalog, of an unknown schema version,
            or damaged. The file is left untouched.
    """

    def __init__(self, root: str | os.PathLike[str], *, create: bool = False, timeout: float = 60.0) -> None:
        self.root = os.path.abspath(root)
        self.path = os.path.join(self.root, CATALOG_FILE)
        self.timeout = timeout
        self._local = threading.local()
        self._catalog_id: str | None = None
        if not os.path.lexists(self.path):
            if not create:
                given = os.fspath(root)
                raise CatalogError(
                    f"no samplestore store at {given!r} (no {CATALOG_FILE} there); to create one, use "
                    f"open_store({given!r}, create=True) or `samplestore init {given}`; a store whose catalog is "
                    f"elsewhere (PostgreSQL) opens with catalog=URI, --catalog URI or SAMPLESTORE_CATALOG")
            self._create_database()
        try:
            self._open_existing()
        except sqlite3.Error as exc:
            self.close()
            raise self._error(exc, "open") from exc
        except BaseException:
            self.close()
            raise

    # -- opening and creating --------------------------------------------------------------
    def _refuse(self, found: str) -> CatalogError:
        return CatalogError(
            f"{self.path!r} is not a usable samplestore catalog: {found}. Expected an SQLite database with the "
            f"samplestore 'meta' table (schema_version one of {list(_KNOWN_VERSIONS)}). The file was left as it is; "
            f"restore catalog.db from a backup, or point at the right store")

    def _create_database(self) -> None:
        """Make a complete catalog under a temporary name, then link it into place.

        A catalog is never seen half made: a crash leaves no ``catalog.db`` at all (and a
        stray temporary file), never an empty or partial one that would open as a store.
        """
        os.makedirs(self.root, exist_ok=True)
        tmp = os.path.join(self.root, f".{CATALOG_FILE}.{uuid.uuid4().hex}.creating")
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                for stmt in _DDL:
                    conn.execute(stmt)
                conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("schema_version", _SCHEMA_VERSION), ("catalog_id", uuid.uuid4().hex),
                    ("created_at", repr(time.time()))])
                conn.execute("COMMIT")
            finally:
                conn.close()  # checkpoints and removes the WAL: the file alone is the catalog
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                # link() fails if the name exists: of two processes creating the same store,
                # one wins and the other opens the winner's catalog.
                os.link(tmp, self.path)
            except FileExistsError:
                pass
            except OSError:
                # A filesystem without hard links: rename (a race with another creator
                # within this instant could replace its fresh, still empty catalog).
                if not os.path.lexists(self.path):
                    os.replace(tmp, self.path)
            dfd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except sqlite3.Error as exc:
            raise self._error(exc, "create") from exc
        except OSError as exc:
            raise CatalogError(f"cannot create a store at {self.root!r}: {exc}; check the path and its "
                               f"permissions") from exc
        finally:
            for leftover in (tmp, tmp + "-wal", tmp + "-shm", tmp + "-journal"):
                try:
                    os.unlink(leftover)
                except FileNotFoundError:
                    pass

    def _open_existing(self) -> None:
        """Check that ``catalog.db`` is a samplestore catalog of a known version, then bring
        an older one up to date. Nothing is written before the checks pass."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise CatalogError(f"cannot read the catalog {self.path!r}: {exc}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise self._refuse("it is not a regular file")
        if st.st_size == 0:
            # SQLite would take an empty file for a new database and the store would open
            # empty: every data file would then look like a leftover to GC.
            raise self._refuse("the file is empty (0 bytes), e.g. truncated")
        with _HEADER_CHECK:
            # Closing any descriptor of a file drops every POSIX lock this process holds on
            # it, SQLite's included: another process closing its connection would then think
            # it the last one and delete the WAL, taking commits made through this process's
            # connections with it. So the header is read only before this process first
            # connects to the file; later (in-place damage) SQLite reports itself.
            key = (st.st_dev, st.st_ino)
            if key not in _CONNECTED:
                try:
                    with open(self.path, "rb") as f:
                        head = f.read(len(_SQLITE_MAGIC))
                except OSError as exc:
                    raise CatalogError(f"cannot read the catalog {self.path!r}: {exc}") from exc
                if head != _SQLITE_MAGIC:
                    raise self._refuse(f"it is not an SQLite database (it starts with {head[:16]!r})")
                _CONNECTED.add(key)
        try:
            conn = self._conn()
            has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        except sqlite3.DatabaseError as exc:
            # The header check was skipped (see above) for a file that is no catalog, e.g. one
            # made since under a recycled inode number: refuse it the same way.
            if "not a database" not in str(exc):
                raise
            raise self._refuse(f"it is not an SQLite database (SQLite: {exc})") from exc
        if has_meta is None:
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            raise self._refuse(f"an SQLite database without the samplestore 'meta' table (tables: {names[:10]})")
        version = self._version(conn)
        if version != _SCHEMA_VERSION:
            self._migrate(conn)
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")

    def _version(self, conn: sqlite3.Connection) -> str:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError as exc:  # a 'meta' table of another program
            raise self._refuse(f"its 'meta' table is not samplestore's ({exc})") from exc
        return common.check_version(None if row is None else str(row[0]), _KNOWN_VERSIONS, _SCHEMA_VERSION,
                                    repr(self.path), self._refuse)

    # Columns added to older catalogs after their tables were made: (table, column, definition).
    _ADDED_COLUMNS = (
        ("files", "row_group_size", "INTEGER NOT NULL DEFAULT 0"),
        ("files", "added_by", "TEXT NOT NULL DEFAULT 'append'"),
        ("leases", "keep_later", "INTEGER NOT NULL DEFAULT 0"),
        ("tables", "appends_replaced_upto", "INTEGER NOT NULL DEFAULT 0"),
        ("files", "sort_key", "TEXT NOT NULL DEFAULT '[]'"),  # version 4
        ("files", "quarantine_id", "INTEGER"),  # version 5
        ("files", "released_snapshot", "INTEGER"),
    )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring an older catalog up to date in one transaction (adding never loses data).

        Every older version gains the tables it lacks (``IF NOT EXISTS``: the rest stay).
        Every older version gains the columns it lacks (version 3 -> 4: ``files.sort_key``,
        ``[]`` for the files it has). Version 1 -> 2 also fills the commit-token table from
        the snapshots that still hold tokens and gives the catalog its id. Version 2 -> 3
        adds the tags table only.
        """
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated it since we looked.
            version = self._version(conn)
            if version != _SCHEMA_VERSION:
                for stmt in _DDL:
                    conn.execute(stmt)
                for table, column, definition in self._ADDED_COLUMNS:
                    have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                    if column not in have:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            if version == "1":
                conn.execute(
                    "INSERT OR REPLACE INTO commit_tokens (table_name, writer_id, commit_token, snapshot_id, committed_at) "
                    "SELECT s.table_name, s.writer_id, s.commit_token, s.snapshot_id, s.created_at FROM snapshots s "
                    "WHERE s.writer_id IS NOT NULL AND s.commit_token IS NOT NULL AND s.snapshot_id = ("
                    "  SELECT MAX(t.snapshot_id) FROM snapshots t WHERE t.table_name = s.table_name "
                    "  AND t.writer_id = s.writer_id AND t.commit_token IS NOT NULL)")
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('catalog_id', ?)", (uuid.uuid4().hex,))
            if version != _SCHEMA_VERSION:
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (_SCHEMA_VERSION,))
            conn.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise

    # -- connections and errors ------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != pid:
            # mode=rw: never create a database here. A catalog.db removed under a running
            # process must fail loudly, not come back empty.
            uri = pathlib.Path(self.path).as_uri() + "?mode=rw"
            conn = sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=True)
            try:
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            except BaseException:
                conn.close()
                raise
            self._local.conn, self._local.pid = conn, pid
        return conn

    def _drop_conn(self) -> None:
        """Forget this thread's connection (the next call opens a new one)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()  # SQLite rolls back whatever transaction was left open
            except sqlite3.Error:
                pass  # a broken connection: nothing more to release

    def _rollback(self, conn: sqlite3.Connection) -> None:
        """Roll back after an error without ever hiding that error."""
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            # The error that brought us here is what the caller needs to see. The connection
            # may be unusable: drop it, so the next call opens a fresh one.
            self._drop_conn()

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction: ``BEGIN IMMEDIATE`` for writes (serialised by SQLite's write
        lock), a plain ``BEGIN`` for a consistent multi-query read."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise

    def _error(self, exc: sqlite3.Error, doing: str) -> CatalogError:
        text = str(exc)
        low = text.lower()
        if "locked" in low or "busy" in low:
            hint = (f"another process held the catalog's write lock for more than {self.timeout:g} s; retry, "
                    f"or open the store with a longer timeout")
        elif "readonly" in low or "read-only" in low or "unable to open" in low:
            hint = "check that the store's folder and catalog.db exist and are writable by this process"
        elif "full" in low or "i/o" in low:
            hint = "check the disk holding the store (free space, I/O errors)"
        elif isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            hint = ("the catalog is damaged or not a samplestore catalog; restore catalog.db from a backup "
                    "(the data files under tables/ are not touched)")
        else:
            hint = "check the store's folder, the disk and the catalog file"
        return CatalogError(f"catalog {self.path!r}: {doing} failed with {type(exc).__name__}: {text}; {hint}")

    @property
    @_translated
    def catalog_id(self) -> str:
        """A random id fixed when this catalog was made (see :attr:`Catalog.catalog_id`)."""
        if self._catalog_id is None:
            row = self._conn().execute("SELECT value FROM meta WHERE key = 'catalog_id'").fetchone()
            if row is None:
                raise CatalogError(f"catalog {self.path!r} has no catalog_id in its meta table; it is damaged")
            self._catalog_id = str(row[0])
        return self._catalog_id

    @property
    def location(self) -> str:
        """The path of ``catalog.db`` (see :attr:`Catalog.location`)."""
        return self.path

    @_translated
    def close(self) -> None:
        """Close this thread's connection (in this process)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local = threading.local()

    # -- tables --------------------------------------------------------------------------
    @_translated
    def create_table(self, name: str, schema: Schema, partition_by: Iterable[str],
                     properties: Mapping[str, Any] | None = None) -> TableMeta:
        """Create a table at snapshot 0; TableExists if the name is taken."""
        validate_table_name(name)
        parts = tuple(partition_by)
        with self._tx() as c:
            if c.execute("SELECT 1 FROM tables WHERE name = ?", (name,)).fetchone():
                raise TableExists(f"table {name!r} exists already in {self.root!r}")
            now = time.time()
            c.execute("INSERT INTO tables (name, schema_json, partition_by, properties, created_at, current_snapshot) "
                      "VALUES (?, ?, ?, ?, ?, 0)",
                      (name, schema.to_json(), json.dumps(parts), json.dumps(dict(properties or {})), now))
        return TableMeta(name, schema, parts, 0, now, dict(properties or {}))

    @_translated
    def drop_table(self, name: str, *, force: bool = False) -> None:
        """Remove a table and every row the catalog holds for it, in one transaction.

        Refuses (:class:`CatalogError` naming each reader) while a live reader lease pins a
        snapshot of the table, unless ``force``: a reader would otherwise lose its files
        mid-epoch.
        """
        with self._tx() as c:
            self._require(c, name)
            now = time.time()
            readers = c.execute("SELECT owner, snapshot_id, expires_at - ? FROM leases WHERE table_name = ? "
                                "AND snapshot_id != 0 AND expires_at > ? ORDER BY snapshot_id, owner",
                                (now, name, now)).fetchall()
            if readers and not force:
                raise common.readers_refusal(name, repr(self.root), readers)
            c.execute("DELETE FROM column_stats WHERE file_id IN (SELECT file_id FROM files WHERE table_name = ?)", (name,))
            c.execute("DELETE FROM deletes WHERE table_name = ?", (name,))
            c.execute("DELETE FROM leases WHERE table_name = ?", (name,))
            c.execute("DELETE FROM commit_tokens WHERE table_name = ?", (name,))
            c.execute("DELETE FROM tags WHERE table_name = ?", (name,))
            c.execute("DELETE FROM quarantines WHERE table_name = ?", (name,))
            c.execute("DELETE FROM files WHERE table_name = ?", (name,))
            c.execute("DELETE FROM snapshots WHERE table_name = ?", (name,))
            c.execute("DELETE FROM tables WHERE name = ?", (name,))

    @_translated
    def set_table_properties(self, name: str, properties: Mapping[str, Any], *,
                             remove: Iterable[str] = ()) -> TableMeta:
        """Set some properties of a table and remove others, in one transaction (read, change
        and write under the write lock, so two processes setting different keys lose neither)."""
        updates, gone = dict(properties), list(remove)
        common.changed_properties(name, "{}", updates, ())  # not JSON: refused before the transaction
        with self._tx() as c:
            row = self._require(c, name)
            props = common.changed_properties(name, row[3], updates, gone)
            c.execute("UPDATE tables SET properties = ? WHERE name = ?", (json.dumps(props), name))
        return TableMeta(row[0], Schema.from_json(row[1]), tuple(json.loads(row[2])), row[5], row[4], props)

    @_translated
    def table_names(self) -> list[str]:
        """Names of all tables, sorted."""
        return [r[0] for r in self._conn().execute("SELECT name FROM tables ORDER BY name")]

    @staticmethod
    def _retained(c: sqlite3.Connection, name: str, snapshot_id: int) -> bool:
        return c.execute("SELECT 1 FROM snapshots WHERE table_name = ? AND snapshot_id = ?",
                         (name, int(snapshot_id))).fetchone() is not None

    @staticmethod
    def _retained_ids(c: sqlite3.Connection, name: str) -> list:
        """The table's retained snapshot ids for an error message (long lists elided)."""
        return common.shown_ids([r[0] for r in c.execute(
            "SELECT snapshot_id FROM snapshots WHERE table_name = ? ORDER BY snapshot_id", (name,))])

    def _require(self, c: sqlite3.Connection, name: str) -> tuple:
        row = c.execute("SELECT name, schema_json, partition_by, properties, created_at, current_snapshot "
                        "FROM tables WHERE name = ?", (name,)).fetchone()
        if row is None:
            names = [r[0] for r in c.execute("SELECT name FROM tables ORDER BY name")]
            raise TableNotFound(f"no table {name!r} in {self.root!r}; tables: {names}")
        return row

    @_translated
    def load_table(self, name: str) -> TableMeta:
        """A table's current definition; TableNotFound lists the tables."""
        row = self._require(self._conn(), name)
        return TableMeta(row[0], Schema.from_json(row[1]), tuple(json.loads(row[2])), row[5], row[4],
                         json.loads(row[3]))

    # -- snapshots -----------------------------------------------------------------------
    @staticmethod
    def _snapshot(row: tuple) -> Snapshot:
        return Snapshot(row[0], row[1], row[2], row[3], json.loads(row[4]), Schema.from_json(row[5]), row[6], row[7])

    _SNAP_COLS = "snapshot_id, parent_id, created_at, operation, summary, schema_json, writer_id, commit_token"

    @_translated
    def snapshots(self, name: str) -> list[Snapshot]:
        """Retained snapshots, oldest first."""
        c = self._conn()
        self._require(c, name)
        rows = c.execute(f"SELECT {self._SNAP_COLS} FROM snapshots WHERE table_name = ? ORDER BY snapshot_id", (name,))
        return [self._snapshot(r) for r in rows]

    @_translated
    def snapshot(self, name: str, snapshot_id: int) -> Snapshot:
        """One retained snapshot; SnapshotNotFound lists those that exist."""
        c = self._conn()
        self._require(c, name)
        row = c.execute(f"SELECT {self._SNAP_COLS} FROM snapshots WHERE table_name = ? AND snapshot_id = ?",
                        (name, int(snapshot_id))).fetchone()
        if row is None:
            raise SnapshotNotFound(f"table {name!r} has no snapshot {snapshot_id}; snapshots: {self._retained_ids(c, name)}")
        return self._snapshot(row)

    @_translated
    def snapshot_as_of(self, name: str, when: float) -> Snapshot:
        """The last snapshot committed at or before ``when`` (seconds since the epoch)."""
        c = self._conn()
        self._require(c, name)
        row = c.execute(f"SELECT {self._SNAP_COLS} FROM snapshots WHERE table_name = ? AND created_at <= ? "
                        "ORDER BY snapshot_id DESC LIMIT 1", (name, float(when))).fetchone()
        if row is None:
            first = c.execute("SELECT MIN(created_at) FROM snapshots WHERE table_name = ?", (name,)).fetchone()[0]
            raise SnapshotNotFound(f"table {name!r} has no snapshot as of {when}; the first was committed at {first}")
        return self._snapshot(row)

    @_translated
    def last_commit_token(self, name: str, writer_id: str) -> str | None:
        """The commit token ``writer_id`` stored last; it survives the expiry of its snapshot."""
        c = self._conn()
        self._require(c, name)
        row = c.execute("SELECT commit_token FROM commit_tokens WHERE table_name = ? AND writer_id = ?",
                        (name, writer_id)).fetchone()
        return row[0] if row else None

    # -- files ---------------------------------------------------------------------------
    _FILE_COLS = ("file_id, path, partition, num_rows, file_bytes, num_row_groups, added_snapshot, removed_snapshot, "
                  "row_group_size, added_by, sort_key, quarantine_id, released_snapshot")

    @_translated
    def files(self, name: str, snapshot_id: int, *, with_stats: Iterable[str] | None = None,
              include_quarantined: bool = False, partitions: Iterable[Mapping[str, Any]] | None = None
              ) -> list[DataFile]:
        snapshot_id = int(snapshot_id)
        visible = "" if include_quarantined else f" AND {common.visible_clause(str(snapshot_id))}"
        keys = None if partitions is None else sorted({partition_key(p) for p in partitions})
        only = "" if keys is None else f" AND partition IN ({','.join('?' * len(keys))})"
        with self._tx(write=False) as c:
            self._require(c, name)
            if keys == []:
                return []
            rows = c.execute(
                f"SELECT {self._FILE_COLS} "
                "FROM files WHERE table_name = ? AND added_snapshot <= ? AND (removed_snapshot IS NULL OR removed_snapshot > ?) "
                f"{visible}{only} ORDER BY file_id", (name, snapshot_id, snapshot_id, *(keys or ()))).fetchall()
            stats: dict[int, dict[str, ColumnStats]] = {}
            cols = list(with_stats) if with_stats is not None else []
            if cols and rows:
                marks = ",".join("?" * len(cols))
                visible_f = "" if include_quarantined else f" AND {common.visible_clause(str(snapshot_id), 'f.')}"
                q = (f"SELECT s.file_id, column_name, nulls, missing, value_count, min_value, max_value, bytes, extra "
                     f"FROM column_stats s JOIN files f ON f.file_id = s.file_id WHERE f.table_name = ? "
                     f"AND f.added_snapshot <= ? AND (f.removed_snapshot IS NULL OR f.removed_snapshot > ?){visible_f} "
                     f"{only.replace('partition', 'f.partition')} AND column_name IN ({marks})")
                for r in c.execute(q, (name, snapshot_id, snapshot_id, *(keys or ()), *cols)):
                    stats.setdefault(r[0], {})[r[1]] = ColumnStats(r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]))
        return [_data_file(r, stats.get(r[0], {})) for r in rows]

    @_translated
    def appended_files(self, name: str, after: int) -> list[DataFile]:
        """Files added by appends after snapshot ``after`` (removed ones the catalog still has too)."""
        c = self._conn()
        rows = c.execute(
            f"SELECT {self._FILE_COLS} FROM files WHERE table_name = ? AND added_by IN ('append', 'stream-append') "
            "AND ((quarantine_id IS NULL AND added_snapshot > ?) OR released_snapshot > ?) "
            "ORDER BY COALESCE(released_snapshot, added_snapshot), file_id", (name, int(after), int(after))).fetchall()
        return [_data_file(r, {}) for r in rows]

    @_translated
    def all_file_paths(self, name: str) -> list[tuple[int, str, int | None]]:
        """(file id, path, removed snapshot) of every file the catalog knows for a table."""
        c = self._conn()
        return [tuple(r) for r in c.execute(
            "SELECT file_id, path, removed_snapshot FROM files WHERE table_name = ?", (name,))]

    # -- deletes -------------------------------------------------------------------------
    @_translated
    def deleted_positions(self, name: str, snapshot_id: int, file_ids: Iterable[int] | None = None) -> dict[int, np.ndarray]:
        """Deleted row positions (sorted int64) of each file, as of a snapshot."""
        c = self._conn()
        q = "SELECT file_id, positions FROM deletes WHERE table_name = ? AND snapshot_id <= ?"
        args: list[Any] = [name, snapshot_id]
        ids = list(file_ids) if file_ids is not None else None
        if ids is not None:
            if not ids:
                return {}
            q += f" AND file_id IN ({','.join('?' * len(ids))})"
            args += ids
        return common.merge_positions(c.execute(q, args), repr(self.path))

    # -- lifecycle -----------------------------------------------------------------------
    @_translated
    def acquire_lease(self, name: str, snapshot_id: int, ttl: float, owner: str = "", keep_later: bool = False) -> str:
        """Pin a snapshot for a reader (or, with 0, mark a writer's work in progress); GC keeps
        its files until the lease lapses. A reader's snapshot must still be retained: checked
        in the transaction that records the lease, so expiry cannot slip in between."""
        lease = uuid.uuid4().hex
        snapshot_id = int(snapshot_id)
        with self._tx() as c:
            row = self._require(c, name)
            # A follower's lease keeps files by the snapshot number alone (everything removed
            # after it); it needs no retained snapshot row.
            if snapshot_id != 0 and not keep_later and not self._retained(c, name, snapshot_id):
                raise common.not_retained(name, snapshot_id, self._retained_ids(c, name), row[5])
            c.execute("INSERT INTO leases (lease_id, table_name, snapshot_id, expires_at, owner, keep_later) "
                      "VALUES (?, ?, ?, ?, ?, ?)", (lease, name, snapshot_id, time.time() + ttl, owner, int(keep_later)))
        return lease

    @_translated
    def renew_lease(self, lease_id: str, ttl: float) -> bool:
        """Extend a lease (the reader's heartbeat); False if it had lapsed and was removed."""
        with self._tx() as c:
            # A lease past its expiry is not revived: GC may already have removed its files.
            now = time.time()
            cur = c.execute("UPDATE leases SET expires_at = ? WHERE lease_id = ? AND expires_at > ?",
                            (now + ttl, lease_id, now))
            return cur.rowcount == 1

    @_translated
    def release_lease(self, lease_id: str) -> None:
        """Drop a lease (a no-op if it is gone already)."""
        with self._tx() as c:
            c.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))

    @_translated
    def follow_watermark(self, name: str) -> int | None:
        """The lowest snapshot of the table's live keep-later leases (None: no follower)."""
        return self._conn().execute("SELECT MIN(snapshot_id) FROM leases WHERE table_name = ? AND expires_at > ? "
                                    "AND keep_later != 0", (name, time.time())).fetchone()[0]

    @_translated
    def appends_replaced_upto(self, name: str) -> int:
        """The newest snapshot whose appended files a commit has since removed (0: none)."""
        c = self._conn()
        self._require(c, name)
        return int(c.execute("SELECT appends_replaced_upto FROM tables WHERE name = ?", (name,)).fetchone()[0])

    @_translated
    def live_leases(self, name: str) -> list[tuple[str, int, float, str]]:
        """(lease id, snapshot, expires at, owner) of the unexpired leases of a table."""
        return [tuple(r) for r in self._conn().execute(
            "SELECT lease_id, snapshot_id, expires_at, owner FROM leases WHERE table_name = ? AND expires_at > ?",
            (name, time.time()))]

    @_translated
    def expire_snapshots(self, name: str, keep: Iterable[int], upto: int | None = None) -> list[int]:
        """Forget every snapshot of a table not in ``keep`` and not after ``upto`` (the current
        one and leased ones are always kept)."""
        keep = set(int(k) for k in keep)
        with self._tx() as c:
            row = self._require(c, name)
            keep.add(row[5])
            c.execute("DELETE FROM leases WHERE expires_at <= ?", (time.time(),))
            keep |= {r[0] for r in c.execute("SELECT snapshot_id FROM leases WHERE table_name = ?", (name,))}
            # Tagged snapshots stay whatever the caller chose: read in this transaction, so a
            # tag made after the caller's listing still protects its snapshot.
            keep |= {r[0] for r in c.execute("SELECT snapshot_id FROM tags WHERE table_name = ?", (name,))}
            ids = [r[0] for r in c.execute("SELECT snapshot_id FROM snapshots WHERE table_name = ? ORDER BY snapshot_id",
                                           (name,))]
            drop = [i for i in ids if i not in keep and (upto is None or i <= upto)]
            c.executemany("DELETE FROM snapshots WHERE table_name = ? AND snapshot_id = ?", [(name, i) for i in drop])
        return drop

    # -- tags ----------------------------------------------------------------------------
    @_translated
    def create_tag(self, name: str, tag: str, snapshot_id: int, *, replace: bool = False) -> Tag:
        """Name a retained snapshot (see :meth:`Catalog.create_tag`)."""
        validate_tag_name(tag)
        snapshot_id = int(snapshot_id)
        with self._tx() as c:
            row = self._require(c, name)
            if not self._retained(c, name, snapshot_id):
                raise common.not_retained(name, snapshot_id, self._retained_ids(c, name), row[5], tag=tag)
            old = c.execute("SELECT snapshot_id FROM tags WHERE table_name = ? AND name = ?", (name, tag)).fetchone()
            if old is not None and not replace:
                raise common.tag_taken(name, tag, old[0])
            now = time.time()
            c.execute("INSERT OR REPLACE INTO tags (table_name, name, snapshot_id, created_at) VALUES (?, ?, ?, ?)",
                      (name, tag, snapshot_id, now))
        return Tag(tag, snapshot_id, now)

    def _missing_tag(self, c: sqlite3.Connection, name: str, tag: str) -> SnapshotNotFound:
        return common.missing_tag(name, tag, [r[0] for r in c.execute(
            "SELECT name FROM tags WHERE table_name = ? ORDER BY name", (name,))])

    @_translated
    def drop_tag(self, name: str, tag: str) -> Tag:
        """Remove a tag; SnapshotNotFound (listing the tags) if there is none of that name."""
        with self._tx() as c:
            self._require(c, name)
            row = c.execute("SELECT name, snapshot_id, created_at FROM tags WHERE table_name = ? AND name = ?",
                            (name, tag)).fetchone()
            if row is None:
                raise self._missing_tag(c, name, tag)
            c.execute("DELETE FROM tags WHERE table_name = ? AND name = ?", (name, tag))
        return Tag(row[0], row[1], row[2])

    @_translated
    def tags(self, name: str) -> list[Tag]:
        """A table's tags, sorted by name."""
        c = self._conn()
        self._require(c, name)
        return [Tag(*r) for r in c.execute("SELECT name, snapshot_id, created_at FROM tags WHERE table_name = ? "
                                           "ORDER BY name", (name,))]

    @_translated
    def resolve_tag(self, name: str, tag: str) -> int:
        """The snapshot a tag names; SnapshotNotFound (listing the tags) if there is none."""
        c = self._conn()
        self._require(c, name)
        row = c.execute("SELECT snapshot_id FROM tags WHERE table_name = ? AND name = ?", (name, tag)).fetchone()
        if row is None:
            raise self._missing_tag(c, name, tag)
        return int(row[0])

    @_translated
    def unreferenced_files(self, name: str) -> list[tuple[int, str]]:
        """Files live in no retained snapshot and no leased one: (file id, path) safe to delete."""
        with self._tx(write=False) as c:
            self._require(c, name)
            pinned = {r[0] for r in c.execute("SELECT snapshot_id FROM snapshots WHERE table_name = ?", (name,))}
            now = time.time()
            pinned |= {r[0] for r in c.execute("SELECT snapshot_id FROM leases WHERE table_name = ? AND expires_at > ?",
                                               (name, now))}
            # A follower keeps every file removed after its snapshot (appends it has yet to read).
            since = c.execute("SELECT MIN(snapshot_id) FROM leases WHERE table_name = ? AND expires_at > ? "
                              "AND keep_later != 0", (name, now)).fetchone()[0]
            rows = c.execute("SELECT file_id, path, added_snapshot, removed_snapshot FROM files WHERE table_name = ? "
                             "AND removed_snapshot IS NOT NULL", (name,)).fetchall()
        return common.unreferenced(rows, pinned, since)

    @_translated
    def forget_files(self, name: str, file_ids: Iterable[int]) -> None:
        """Drop files (already deleted from disk) and their statistics and deletes from the catalog."""
        ids = list(file_ids)
        if not ids:
            return
        with self._tx() as c:
            for k in range(0, len(ids), 500):
                # Only removed files of this table: the statistics and deletes of a live file
                # (or another table's) must survive an id passed here by mistake.
                chunk = ids[k:k + 500]
                marks = ",".join("?" * len(chunk))
                part = [r[0] for r in c.execute(f"SELECT file_id FROM files WHERE table_name = ? AND removed_snapshot "
                                                f"IS NOT NULL AND file_id IN ({marks})", (name, *chunk))]
                if not part:
                    continue
                marks = ",".join("?" * len(part))
                c.execute(f"DELETE FROM column_stats WHERE file_id IN ({marks})", part)
                c.execute(f"DELETE FROM deletes WHERE file_id IN ({marks})", part)
                c.execute(f"DELETE FROM files WHERE file_id IN ({marks})", part)

    # -- commit --------------------------------------------------------------------------
    @_translated
    def commit(self, name: str, operation: str, *, add: Iterable[DataFile] = (), remove: Iterable[int] = (),
               schema: Schema | None = None, writer_id: str | None = None, commit_token: str | None = None,
               summary: Mapping[str, Any] | None = None, deletes: Mapping[int, Any] | None = None,
               planned_at: int | None = None, quarantine: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
               ) -> Snapshot:
        """One atomic commit as a new snapshot (see :meth:`Catalog.commit`); the writer's
        commit token, if any, is recorded in the same transaction."""
        add, remove = list(add), sorted(set(int(i) for i in remove))
        held = common.quarantine_groups(add, quarantine)
        deletes = {int(k): v for k, v in (deletes or {}).items() if len(v)}
        with self._tx() as c:
            row = self._require(c, name)
            parent = row[5]
            new_id = parent + 1
            removed_rows = 0
            guarded = sorted(set(remove) | set(deletes))
            if planned_at is not None and guarded:
                marks = ",".join("?" * len(guarded))
                late = c.execute(f"SELECT DISTINCT file_id FROM deletes WHERE file_id IN ({marks}) AND snapshot_id > ?",
                                 (*guarded, planned_at)).fetchall()
                if late:
                    raise common.late_deletes(operation, name, [r[0] for r in late], planned_at)
            refresh: set[int] = set()
            removed_files = 0
            if remove:
                marks = ",".join("?" * len(remove))
                live = c.execute(f"SELECT file_id, num_rows, {common.HELD}, quarantine_id FROM files WHERE table_name = ? "
                                 f"AND removed_snapshot IS NULL AND file_id IN ({marks})", (name, *remove)).fetchall()
                if len(live) != len(remove):
                    raise common.removed_since(operation, name, sorted(set(remove) - {r[0] for r in live}), parent)
                # Held files were never in the totals; their quarantine's counts are refreshed.
                shown = [r[0] for r in live if not r[2]]
                refresh.update(r[3] for r in live if r[2])
                removed_files = len(shown)
                removed_rows = sum(r[1] for r in live if not r[2])
                if shown:
                    # Rows of these files already deleted were subtracted from the totals by their delete.
                    removed_rows -= c.execute(f"SELECT COALESCE(SUM(count), 0) FROM deletes WHERE file_id IN "
                                              f"({','.join('?' * len(shown))})", tuple(shown)).fetchone()[0]
                c.execute(f"UPDATE files SET removed_snapshot = ? WHERE file_id IN ({marks})", (new_id, *remove))
                # How far appends have been merged away: a follower that has not read past this
                # point can no longer read those appends as they were (see appends_replaced_upto).
                c.execute(f"UPDATE tables SET appends_replaced_upto = MAX(appends_replaced_upto, COALESCE(("
                          f"SELECT MAX(COALESCE(released_snapshot, added_snapshot)) FROM files WHERE file_id IN ({marks}) "
                          f"AND added_by IN ('append', 'stream-append') AND NOT {common.HELD}), 0)) WHERE name = ?",
                          (*remove, name))
            now = time.time()
            qid_of: dict[int, int] = {}
            for key, idx in held.items():
                cur = c.execute("INSERT INTO quarantines (table_name, partition, violations, files, num_rows, snapshot_id, "
                                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (name, key, json.dumps(list(quarantine[key])), len(idx),
                                 sum(add[i].num_rows for i in idx), new_id, now))
                qid_of.update((i, cur.lastrowid) for i in idx)
            joined = common.joined_quarantines(c.execute, "?", name, add)
            refresh.update(q for q, _ in joined.values())
            added_rows = 0
            for i, f in enumerate(add):
                qid, added_by = joined.get(i, (qid_of.get(i), operation))
                cur = c.execute("INSERT INTO files (table_name, path, partition, num_rows, file_bytes, num_row_groups, "
                                "row_group_size, added_by, sort_key, added_snapshot, quarantine_id) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (name, f.path, f.partition_key, f.num_rows, f.file_bytes, f.num_row_groups,
                                 f.row_group_size or f.num_rows, added_by, json.dumps(list(f.sort_key)), new_id, qid))
                fid = cur.lastrowid
                added_rows += 0 if qid is not None else f.num_rows
                c.executemany("INSERT INTO column_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                    (fid, col, s.nulls, s.missing, s.values, _sql_value(s.min), _sql_value(s.max), s.bytes,
                     json.dumps(dict(s.extra))) for col, s in f.stats.items()])
            deleted_rows = held_deleted = 0
            if deletes:
                marks = ",".join("?" * len(deletes))
                live = dict(c.execute(f"SELECT file_id, {common.HELD} FROM files WHERE table_name = ? "
                                      f"AND removed_snapshot IS NULL AND file_id IN ({marks})", (name, *deletes)))
                if len(live) != len(deletes):
                    raise common.replaced_since(name, sorted(set(deletes) - set(live)))
                for fid, pos in deletes.items():
                    arr = np.unique(np.asarray(pos, dtype="<i8"))
                    deleted_rows += len(arr)
                    held_deleted += len(arr) if live[fid] else 0
                    c.execute("INSERT INTO deletes VALUES (?, ?, ?, ?, ?)", (name, fid, new_id, arr.tobytes(), len(arr)))
            for qid in sorted(refresh):
                c.execute(common.refresh_quarantine_sql("?"), (qid,))
            prev = c.execute("SELECT summary FROM snapshots WHERE table_name = ? AND snapshot_id = ?", (name, parent)).fetchone()
            full = common.commit_summary(prev[0] if prev else None, added_files=len(add) - len(qid_of) - len(joined),
                                         added_rows=added_rows, removed_files=removed_files, removed_rows=removed_rows,
                                         deleted_rows=deleted_rows, held_deleted_rows=held_deleted,
                                         extra=common.held_summary(add, qid_of, summary))
            schema_json = schema.to_json() if schema is not None else row[1]
            c.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (name, new_id, parent if parent else None, now, operation, json.dumps(full), schema_json,
                       writer_id, commit_token))
            if writer_id is not None and commit_token is not None:
                # In the commit's own transaction: the token and the rows it covers become
                # visible together, so a restarted writer never skips or repeats rows.
                c.execute("INSERT OR REPLACE INTO commit_tokens VALUES (?, ?, ?, ?, ?)",
                          (name, writer_id, commit_token, new_id, now))
            c.execute("UPDATE tables SET current_snapshot = ?, schema_json = ? WHERE name = ?", (new_id, schema_json, name))
        return Snapshot(new_id, parent if parent else None, now, operation, full,
                        schema if schema is not None else Schema.from_json(row[1]), writer_id, commit_token)


    # -- quarantine ----------------------------------------------------------------------
    @_translated
    def quarantines(self, name: str, *, resolved: bool = False) -> list[Quarantine]:
        """The table's open quarantines (all of them with ``resolved``), by id."""
        c = self._conn()
        self._require(c, name)
        q = f"SELECT {common.QUARANTINE_COLS} FROM quarantines WHERE table_name = ?"
        if not resolved:
            q += " AND resolution IS NULL"
        return [common.quarantine_of(r) for r in c.execute(q + " ORDER BY quarantine_id", (name,))]

    @_translated
    def resolve_quarantine(self, name: str, quarantine_id: int, action: str) -> Snapshot:
        """Release or drop an open quarantine as one snapshot (see :meth:`Catalog.resolve_quarantine`)."""
        operation = common.quarantine_action(action)
        qid = int(quarantine_id)
        with self._tx() as c:
            row = self._require(c, name)
            common.require_open_quarantine(c.execute, "?", name, qid)
            parent = row[5]
            new_id = parent + 1
            files, rows = c.execute(common.held_counts_sql("?"), (name, qid, name, qid)).fetchone()
            column = "released_snapshot" if action == "release" else "removed_snapshot"
            c.execute(f"UPDATE files SET {column} = ? WHERE table_name = ? AND quarantine_id = ? "
                      f"AND removed_snapshot IS NULL", (new_id, name, qid))
            c.execute("UPDATE quarantines SET resolution = ?, resolved_snapshot = ? WHERE quarantine_id = ?",
                      (common.resolution_of(action), new_id, qid))
            prev = c.execute("SELECT summary FROM snapshots WHERE table_name = ? AND snapshot_id = ?", (name, parent)).fetchone()
            full = common.resolved_summary(prev[0] if prev else None, action, qid, files, rows)
            now = time.time()
            c.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (name, new_id, parent if parent else None, now, operation, json.dumps(full), row[1], None, None))
            c.execute("UPDATE tables SET current_snapshot = ? WHERE name = ?", (new_id, name))
        return Snapshot(new_id, parent if parent else None, now, operation, full, Schema.from_json(row[1]))


# A plain folder (no URI scheme) opens the embedded catalog inside it.
register_backend(LOCAL, lambda location, create: SQLiteCatalog(location, create=create))


def _data_file(r: Sequence[Any], stats: Mapping[str, ColumnStats]) -> DataFile:
    """A DataFile from a files row (file_id, path, partition, num_rows, file_bytes,
    num_row_groups, added_snapshot, removed_snapshot, row_group_size, added_by, sort_key,
    quarantine_id, released_snapshot)."""
    return DataFile(r[1], json.loads(r[2]), r[3], r[4], r[5], r[0], r[6], r[7], stats, r[8], r[9],
                    tuple(json.loads(r[10])), r[11], r[12])


def _sql_value(v: Any) -> Any:
    if v is None or isinstance(v, (int, float, str)):
        return v
    return float(v)
